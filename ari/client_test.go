package ari_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ariv5 "github.com/CyCoreSystems/ari/v5"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/internal/clock"
)

const (
	testUser     = "callbackd"
	testPassword = "callbackd-secret"
	// guard bounds every wait in these tests; it catches deadlocks and is never a speed
	// assertion.
	guard = 20 * time.Second
)

var epoch = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// newDrivenFake starts a fake Asterisk whose clock a background driver keeps moving, so
// scripted rings and answers happen without waiting.
func newDrivenFake(t *testing.T) *aritest.Server {
	t.Helper()
	clk := clock.NewFake(epoch)
	srv, err := aritest.New(aritest.Options{Clock: clk})
	if err != nil {
		t.Fatalf("starting fake Asterisk: %v", err)
	}
	stop, driven := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(driven)
		aritest.Drive(clk, 10*time.Millisecond, stop, time.Hour)
	}()
	t.Cleanup(func() {
		close(stop)
		<-driven
		srv.Close()
	})
	return srv
}

func newClient(t *testing.T, url string, opts ...func(*ari.ClientOptions)) *ari.Client {
	t.Helper()
	o := ari.ClientOptions{URL: url, Username: testUser, Password: testPassword}
	for _, f := range opts {
		f(&o)
	}
	c, err := ari.NewClient(o)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func must[T any](t *testing.T, what string) func(T, error) T {
	t.Helper()
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// connectApp registers app with the fake by opening its events socket, as Asterisk only
// knows an application while a socket for it is open.
func connectApp(t *testing.T, srv *aritest.Server, app string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := newRecorder()
	conn, err := ari.NewConn(ari.Options{URL: srv.URL() + "/ari", Username: testUser, Password: testPassword,
		MonitorApp: app + "-monitor", ControlApp: app})
	if err != nil {
		t.Fatalf("NewConn: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.Run(ctx, h, h)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitUntil(t, "control app connected", func() bool { return srv.Connected(app) && conn.Connected() })
}

func TestClientSpeaksARIToTheFakeAsterisk(t *testing.T) {
	srv := newDrivenFake(t)
	srv.SetEndpoint("PJSIP/1001", aritest.Answers(0))
	srv.SetEndpoint("PJSIP/0612345678", aritest.Rings())
	connectApp(t, srv, "ctl")
	c := newClient(t, srv.URL()+"/ari")
	ctx := context.Background()

	info := must[ari.AsteriskInfo](t, "Info")(c.Info(ctx))
	if info.EntityID != "02:fc:00:00:00:01" || !info.StartupTime.Equal(srv.StartupTime().Truncate(time.Millisecond)) {
		t.Errorf("Info = %+v; want entity 02:fc:00:00:00:01 and startup %v", info, srv.StartupTime())
	}

	inbound := srv.CreateChannel(aritest.ChannelSpec{Endpoint: "PJSIP/trunk", CallerNumber: "+31201234567"})
	chans := must[[]ari.Channel](t, "Channels")(c.Channels(ctx))
	if len(chans) != 1 || chans[0].ID != inbound.ID || chans[0].LinkedID() != inbound.ID {
		t.Fatalf("Channels = %+v; want the inbound channel with its linkedid", chans)
	}
	got := must[ari.Channel](t, "Channel")(c.Channel(ctx, inbound.ID))
	if got.Caller.Number != "+31201234567" {
		t.Errorf("Channel caller = %q", got.Caller.Number)
	}

	agent := must[ari.Channel](t, "Originate")(c.Originate(ctx, ari.OriginateRequest{
		Endpoint: "PJSIP/1001", App: "ctl", AppArgs: "agent", ChannelID: "agent-1",
		CallerID: `"Callback" <+31201234567>`, Timeout: 20}))
	if agent.ID != "agent-1" {
		t.Errorf("Originate returned channel %q; want agent-1", agent.ID)
	}
	customer := must[ari.Channel](t, "CreateChannel")(c.CreateChannel(ctx, ari.CreateRequest{
		ChannelCreateRequest: ariv5.ChannelCreateRequest{Endpoint: "PJSIP/0612345678", App: "ctl", ChannelID: "cust-1"},
		Variables:            map[string]string{"CALLBACK_JOB": "job-7"},
	}))
	if customer.ID != "cust-1" {
		t.Errorf("CreateChannel returned channel %q; want cust-1", customer.ID)
	}
	if v := must[string](t, "GetVar")(c.GetVar(ctx, "cust-1", "CALLBACK_JOB")); v != "job-7" {
		t.Errorf("variable from create = %q; want job-7", v)
	}
	ok(t, "SetVar", c.SetVar(ctx, "cust-1", "CALLBACK_REASON", "voicemail"))
	if v := must[string](t, "GetVar")(c.GetVar(ctx, "cust-1", "CALLBACK_REASON")); v != "voicemail" {
		t.Errorf("GetVar after SetVar = %q; want voicemail", v)
	}

	br := must[ari.Bridge](t, "CreateBridge")(c.CreateBridge(ctx, "cb-1", "mixing"))
	if br.ID != "cb-1" {
		t.Errorf("CreateBridge id = %q", br.ID)
	}
	ok(t, "AddChannel", c.AddChannel(ctx, "cb-1", "cust-1"))
	bridges := must[[]ari.Bridge](t, "Bridges")(c.Bridges(ctx))
	if len(bridges) != 1 || len(bridges[0].Channels) != 1 || bridges[0].Channels[0] != "cust-1" {
		t.Errorf("Bridges = %+v; want cb-1 holding cust-1", bridges)
	}
	ok(t, "Dial", c.Dial(ctx, "cust-1", "agent-1", 25*time.Second))
	pb := must[ari.Playback](t, "Play")(c.Play(ctx, "cust-1", "pb-1", []string{"sound:hello", "digits:123"}))
	if pb.ID != "pb-1" || pb.MediaURI != "sound:hello" {
		t.Errorf("Play = %+v", pb)
	}
	ok(t, "RemoveChannel", c.RemoveChannel(ctx, "cb-1", "cust-1"))
	ok(t, "DestroyBridge", c.DestroyBridge(ctx, "cb-1"))
	ok(t, "Hangup", c.Hangup(ctx, "cust-1", "normal"))
	ok(t, "Subscribe", c.Subscribe(ctx, "ctl", "endpoint:PJSIP/1001", "deviceState:PJSIP/1001"))
	ok(t, "SetEventFilter", c.SetEventFilter(ctx, "ctl", []ari.EventType{ari.EventDial, ari.EventStasisStart}))

	eps := must[[]ari.Endpoint](t, "Endpoints")(c.Endpoints(ctx))
	if len(eps) != 2 || eps[0].Resource != "0612345678" || eps[1].Resource != "1001" {
		t.Errorf("Endpoints = %+v; want the two scripted endpoints", eps)
	}
	ds := must[ari.DeviceState](t, "DeviceState")(c.DeviceState(ctx, "Stasis:agent100-ready"))
	if ds.Name != "Stasis:agent100-ready" || ds.State != "UNKNOWN" {
		t.Errorf("DeviceState of a device never set = %+v; want Stasis:agent100-ready UNKNOWN", ds)
	}
}

// fakeREST is an httptest server that answers every request with status and body and keeps
// what it was asked.
type fakeREST struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
}

func newFakeREST(t *testing.T, status int, body string) *fakeREST {
	t.Helper()
	f := &fakeREST{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeREST) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func TestClientSendsWhatARIExpects(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(c *ari.Client) error
		want string
	}{
		{"device states", func(c *ari.Client) error { _, err := c.DeviceStates(ctx); return err },
			"GET /ari/deviceStates"},
		{"dial rounds the timeout up to seconds", func(c *ari.Client) error { return c.Dial(ctx, "c1", "", 1500*time.Millisecond) },
			"POST /ari/channels/c1/dial?timeout=2"},
		{"hangup with a reason", func(c *ari.Client) error { return c.Hangup(ctx, "c1", "busy") },
			"DELETE /ari/channels/c1?reason=busy"},
		{"ids are path-escaped", func(c *ari.Client) error { return c.Hangup(ctx, "a/b c", "") },
			"DELETE /ari/channels/a%2Fb%20c"},
		{"subscription sources are one comma list", func(c *ari.Client) error {
			return c.Subscribe(ctx, "app", "endpoint:PJSIP/1001", "deviceState:PJSIP/1001")
		}, "POST /ari/applications/app/subscription?eventSource=endpoint%3APJSIP%2F1001%2CdeviceState%3APJSIP%2F1001"},
		{"bridge type defaults to mixing", func(c *ari.Client) error { _, err := c.CreateBridge(ctx, "", ""); return err },
			"POST /ari/bridges?type=mixing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeREST(t, http.StatusOK, `{}`)
			if tt.name == "device states" {
				f = newFakeREST(t, http.StatusOK, `[{"name":"Stasis:agent1","state":"NOT_INUSE"}]`)
			}
			if err := tt.call(newClient(t, f.URL+"/ari")); err != nil {
				t.Fatalf("call failed: %v", err)
			}
			if got := f.seen(); len(got) != 1 || got[0] != tt.want {
				t.Errorf("requests = %q; want [%q]", got, tt.want)
			}
		})
	}
}

func TestDeviceStatesDecodesTheList(t *testing.T) {
	f := newFakeREST(t, http.StatusOK, `[{"name":"Stasis:agent1","state":"NOT_INUSE"},{"name":"Stasis:agent2","state":"INUSE"}]`)
	got, err := newClient(t, f.URL+"/ari").DeviceStates(context.Background())
	if err != nil {
		t.Fatalf("DeviceStates: %v", err)
	}
	want := []ari.DeviceState{{Name: "Stasis:agent1", State: "NOT_INUSE"}, {Name: "Stasis:agent2", State: "INUSE"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("DeviceStates = %v; want %v", got, want)
	}
}

func TestNon2xxRepliesBecomeHTTPErrors(t *testing.T) {
	srv := newDrivenFake(t)
	srv.SetEndpoint("PJSIP/1001", aritest.Unavailable())
	c := newClient(t, srv.URL()+"/ari")
	ctx := context.Background()
	tests := []struct {
		name       string
		call       func() error
		wantStatus int
		wantPath   string
		wantText   string
	}{
		{"originate to an unregistered endpoint", func() error {
			_, err := c.Originate(ctx, ari.OriginateRequest{Endpoint: "PJSIP/1001", App: "ctl"})
			return err
		}, 500, "/channels", "ari: originate PJSIP/1001: 500 Allocation failed"},
		{"hangup of a channel that is gone", func() error { return c.Hangup(ctx, "nope", "") },
			404, "/channels/nope", "ari: hang up channel nope: 404 Channel not found"},
		{"bad hangup reason", func() error { return c.Hangup(ctx, "nope", "because") },
			400, "/channels/nope", "ari: hang up channel nope: 400 Invalid reason for hangup provided"},
		{"event filter for an app that is not connected", func() error { return c.SetEventFilter(ctx, "ghost", nil) },
			404, "/applications/ghost/eventFilter", "ari: set event filter of ghost: 404 Application not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var he *ari.HTTPError
			if !errors.As(err, &he) {
				t.Fatalf("error %v (%T) is not an *ari.HTTPError", err, err)
			}
			if he.Status != tt.wantStatus || he.Path != tt.wantPath || ari.StatusOf(err) != tt.wantStatus {
				t.Errorf("HTTPError = %+v; want status %d path %s", he, tt.wantStatus, tt.wantPath)
			}
			if err.Error() != tt.wantText {
				t.Errorf("error text = %q; want %q", err.Error(), tt.wantText)
			}
		})
	}
}

func TestErrorsNeverCarryThePassword(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	srv := newDrivenFake(t)
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/ari"
	}()
	blocked := make(chan struct{})
	t.Cleanup(func() { close(blocked) })
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-blocked:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)

	tests := []struct {
		name string
		url  string
		call func(c *ari.Client) error
	}{
		{"connection refused", refused, func(c *ari.Client) error { _, err := c.Info(context.Background()); return err }},
		{"wrong password (401)", srv.URL() + "/ari", func(c *ari.Client) error { _, err := c.Channels(context.Background()); return err }},
		{"not found", srv.URL() + "/ari", func(c *ari.Client) error { return c.Hangup(context.Background(), "x", "") }},
		{"timeout", slow.URL + "/ari", func(c *ari.Client) error { _, err := c.Bridges(context.Background()); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ari.NewClient(ari.ClientOptions{URL: tt.url, Username: testUser, Password: secret,
				RequestTimeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			err = tt.call(c)
			if err == nil {
				t.Fatal("call succeeded; want an error")
			}
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
				if strings.Contains(s, secret) {
					t.Errorf("error leaks the password: %s", s)
				}
			}
		})
	}
	t.Run("401 is reported as such", func(t *testing.T) {
		c, _ := ari.NewClient(ari.ClientOptions{URL: srv.URL() + "/ari", Username: testUser, Password: secret})
		_, err := c.Info(context.Background())
		if ari.StatusOf(err) != http.StatusUnauthorized {
			t.Errorf("Info with a wrong password: %v; want a 401 HTTPError", err)
		}
	})
}

func TestRequestsTimeOut(t *testing.T) {
	released := make(chan struct{})
	var arrived atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		select {
		case <-released:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(released) })
	c := newClient(t, slow.URL+"/ari", func(o *ari.ClientOptions) { o.RequestTimeout = 50 * time.Millisecond })
	_, err := c.Originate(context.Background(), ari.OriginateRequest{Endpoint: "PJSIP/1001", App: "ctl"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Originate against a server that never answers: %v; want context.DeadlineExceeded", err)
	}
	if !strings.HasPrefix(err.Error(), "ari: originate PJSIP/1001: ") {
		t.Errorf("error %q does not say what was being done", err)
	}
	if arrived.Load() != 1 {
		t.Errorf("server saw %d requests; want 1", arrived.Load())
	}
}

func TestBadArgumentsAreRejectedWithoutARequest(t *testing.T) {
	f := newFakeREST(t, http.StatusOK, `{}`)
	c := newClient(t, f.URL+"/ari")
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"originate without endpoint", func() error { _, err := c.Originate(ctx, ari.OriginateRequest{App: "x"}); return err }, "endpoint is empty"},
		{"originate without app or extension", func() error {
			_, err := c.Originate(ctx, ari.OriginateRequest{Endpoint: "PJSIP/1"})
			return err
		}, "neither app nor extension"},
		{"originate with both app and extension", func() error {
			_, err := c.Originate(ctx, ari.OriginateRequest{Endpoint: "PJSIP/1", App: "a", Extension: "100"})
			return err
		}, "ARI takes one"},
		{"create without app", func() error {
			_, err := c.CreateChannel(ctx, ari.CreateRequest{ChannelCreateRequest: ariv5.ChannelCreateRequest{Endpoint: "PJSIP/1"}})
			return err
		}, "app is empty"},
		{"dial without id", func() error { return c.Dial(ctx, "", "", 0) }, "channel id is empty"},
		{"dial with negative timeout", func() error { return c.Dial(ctx, "c", "", -time.Second) }, "negative"},
		{"hangup without id", func() error { return c.Hangup(ctx, " ", "") }, "channel id is empty"},
		{"play without media", func() error { _, err := c.Play(ctx, "c", "", nil); return err }, "no media"},
		{"play with a media that has no scheme", func() error { _, err := c.Play(ctx, "c", "", []string{"hello"}); return err }, `media "hello"`},
		{"play with a comma smuggled into a media", func() error {
			_, err := c.Play(ctx, "c", "", []string{"sound:a,sound:b"})
			return err
		}, "not scheme:value"},
		{"set var without name", func() error { return c.SetVar(ctx, "c", "", "v") }, "variable name is empty"},
		{"get var without channel", func() error { _, err := c.GetVar(ctx, "", "X"); return err }, "channel id is empty"},
		{"add channel without bridge", func() error { return c.AddChannel(ctx, "", "c") }, "bridge id is empty"},
		{"remove channel without channel", func() error { return c.RemoveChannel(ctx, "b", "") }, "channel id is empty"},
		{"destroy bridge without id", func() error { return c.DestroyBridge(ctx, "") }, "bridge id is empty"},
		{"subscribe without sources", func() error { return c.Subscribe(ctx, "app") }, "no event source"},
		{"subscribe to an unknown source kind", func() error { return c.Subscribe(ctx, "app", "queue:sales") }, `"queue:sales"`},
		{"event filter with an empty type", func() error { return c.SetEventFilter(ctx, "app", []ari.EventType{ari.EventDial, ""}) }, "empty event type"},
		{"device state without name", func() error { _, err := c.DeviceState(ctx, ""); return err }, "device name is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v; want one mentioning %q", err, tt.want)
			}
		})
	}
	if got := f.seen(); len(got) != 0 {
		t.Errorf("bad arguments still produced requests: %q", got)
	}
}

func TestNewClientRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts ari.ClientOptions
		want string
	}{
		{"no URL", ari.ClientOptions{Username: "u"}, "URL is empty"},
		{"credentials in the URL", ari.ClientOptions{URL: "http://u:hunter2@pbx:8088/ari", Username: "u"}, "must not contain a username or password"},
		{"websocket scheme", ari.ClientOptions{URL: "ws://pbx:8088/ari", Username: "u"}, `scheme "ws"`},
		{"no host", ari.ClientOptions{URL: "http:///ari", Username: "u"}, "no host"},
		{"query string", ari.ClientOptions{URL: "http://pbx:8088/ari?api_key=u:hunter2", Username: "u"}, "query"},
		{"no username", ari.ClientOptions{URL: "http://pbx:8088/ari"}, "username is empty"},
		{"negative timeout", ari.ClientOptions{URL: "http://pbx:8088/ari", Username: "u", RequestTimeout: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ari.NewClient(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient error = %v; want one mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestBaseURLGetsTheARIPath(t *testing.T) {
	for _, in := range []string{"http://pbx:8088", "http://pbx:8088/", "http://pbx:8088/ari/"} {
		c, err := ari.NewClient(ari.ClientOptions{URL: in, Username: "u"})
		if err != nil {
			t.Fatalf("NewClient(%q): %v", in, err)
		}
		if c.BaseURL() != "http://pbx:8088/ari" {
			t.Errorf("BaseURL of %q = %q; want http://pbx:8088/ari", in, c.BaseURL())
		}
	}
}

func TestErrorRepliesOfEveryShapeAreExplained(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"ARI message", 404, `{"message":"Channel not found"}`, "ari: hang up channel c1: 404 Channel not found"},
		{"ARI error key", 500, `{"error":"Allocation failed"}`, "ari: hang up channel c1: 500 Allocation failed"},
		{"proxy page", 502, "<html>bad gateway</html>", "ari: hang up channel c1: 502 <html>bad gateway</html>"},
		{"no body", 503, "", "ari: hang up channel c1: 503 Service Unavailable"},
		{"huge body is cut", 500, strings.Repeat("x", 500), "ari: hang up channel c1: 500 " + strings.Repeat("x", 200) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeREST(t, tt.status, tt.body)
			err := newClient(t, f.URL+"/ari").Hangup(context.Background(), "c1", "")
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v; want %q", err, tt.want)
			}
		})
	}
}

func TestInfoRejectsRepliesItCannotUse(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"no entity id", `{"system":{},"status":{"startup_time":"2026-11-23T08:00:00.000+0000"}}`, "no system.entity_id"},
		{"bad startup time", `{"system":{"entity_id":"e"},"status":{"startup_time":"yesterday"}}`, `startup_time "yesterday"`},
		{"not JSON", `<html>`, "decoding reply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeREST(t, http.StatusOK, tt.body)
			_, err := newClient(t, f.URL+"/ari").Info(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "ari: asterisk info: ") {
				t.Errorf("Info error = %v; want one saying %q", err, tt.want)
			}
		})
	}
}

// Asterisk decodes path segments the legacy way, '+' as a space: a device or channel name with
// a '+' must reach the same resource, so the client escapes it.
func TestClientEscapesPlusInPathSegments(t *testing.T) {
	srv := newDrivenFake(t)
	srv.SetEndpoint("PJSIP/+31201234501@provider", aritest.Rings())
	c := newClient(t, srv.URL()+"/ari")
	ds, err := c.DeviceState(context.Background(), "PJSIP/+31201234501@provider")
	if err != nil || ds.State != "NOT_INUSE" {
		t.Errorf("DeviceState of a name with '+' = %+v, %v; want NOT_INUSE of that very device", ds, err)
	}
}

// Playback reads a playback while Asterisk holds it; once it ended (here: its channel hung
// up) the answer is a 404 the caller tells apart through StatusOf, and reads as finished.
func TestPlaybackIsReadWhileItPlaysAndNotFoundAfter(t *testing.T) {
	srv := newDrivenFake(t)
	srv.SetEndpoint("PJSIP/0612345678", aritest.Rings())
	connectApp(t, srv, "ctl")
	c := newClient(t, srv.URL()+"/ari")
	ctx := context.Background()
	must[ari.Channel](t, "CreateChannel")(c.CreateChannel(ctx, ari.CreateRequest{
		ChannelCreateRequest: ariv5.ChannelCreateRequest{Endpoint: "PJSIP/0612345678", App: "ctl", ChannelID: "cust-1"}}))
	must[ari.Playback](t, "Play")(c.Play(ctx, "cust-1", "pb-1", []string{"sound:hello", "digits:12345678901234567890"}))

	pb := must[ari.Playback](t, "Playback")(c.Playback(ctx, "pb-1"))
	if pb.ID != "pb-1" || pb.TargetURI != "channel:cust-1" || pb.State == "" {
		t.Errorf("Playback while it plays = %+v; want pb-1 on channel:cust-1 with its state", pb)
	}
	ok(t, "Hangup", c.Hangup(ctx, "cust-1", "normal"))
	_, err := c.Playback(ctx, "pb-1")
	if ari.StatusOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), "Playback not found") {
		t.Errorf("Playback after its channel hung up: %v; want a 404 HTTPError saying Playback not found", err)
	}
	if _, err := c.Playback(ctx, " "); err == nil || ari.StatusOf(err) != 0 {
		t.Errorf("Playback without an id: %v; want an error and no request", err)
	}
}
