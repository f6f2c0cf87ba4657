package ari_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/internal/clock"
)

// recorder is a Handler that keeps everything it is given, in order, and tracks open
// channels the way the detector tracks calls: opened by ChannelCreated, closed by
// ChannelDestroyed or by a Resync that no longer lists them.
type recorder struct {
	mu      sync.Mutex
	log     []entry
	open    map[string]bool
	closed  []string // channels closed out by a resync
	release chan struct{}
	blocked chan struct{} // closed once HandleEvent is waiting on release
	once    sync.Once
}

type entry struct {
	ev   *ari.Event
	snap *ari.Snapshot
}

func newRecorder() *recorder { return &recorder{open: map[string]bool{}} }

// isBlocked says whether a HandleEvent is waiting on blocking's release.
func (r *recorder) isBlocked() bool {
	select {
	case <-r.blocked:
		return true
	default:
		return false
	}
}

// blocking makes the first HandleEvent wait until the returned func is called.
func (r *recorder) blocking() (unblock func()) {
	r.release = make(chan struct{})
	r.blocked = make(chan struct{})
	return func() { close(r.release) }
}

func (r *recorder) HandleEvent(ev *ari.Event) {
	if r.release != nil {
		r.once.Do(func() { close(r.blocked) })
		<-r.release
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, entry{ev: ev})
	if ev.Channel == nil {
		return
	}
	switch ev.Type {
	case ari.EventChannelCreated:
		r.open[ev.Channel.ID] = true
	case ari.EventChannelDestroyed:
		delete(r.open, ev.Channel.ID)
	}
}

func (r *recorder) Resync(snap ari.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, entry{snap: &snap})
	live := map[string]bool{}
	for _, ch := range snap.Channels {
		live[ch.ID] = true
	}
	for id := range r.open {
		if snap.Restarted || !live[id] {
			delete(r.open, id)
			r.closed = append(r.closed, id)
		}
	}
}

func (r *recorder) entries() []entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]entry(nil), r.log...)
}

func (r *recorder) resyncs() []ari.Snapshot {
	var out []ari.Snapshot
	for _, e := range r.entries() {
		if e.snap != nil {
			out = append(out, *e.snap)
		}
	}
	return out
}

func (r *recorder) events() []*ari.Event {
	var out []*ari.Event
	for _, e := range r.entries() {
		if e.ev != nil {
			out = append(out, e.ev)
		}
	}
	return out
}

// trail is the log in a compact form: "resync", "ChannelCreated:<id>", ...
func (r *recorder) trail() []string {
	var out []string
	for _, e := range r.entries() {
		switch {
		case e.snap != nil:
			out = append(out, "resync")
		case e.ev.Channel != nil:
			out = append(out, string(e.ev.Type)+":"+e.ev.Channel.ID)
		default:
			out = append(out, string(e.ev.Type))
		}
	}
	return out
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log)
}

func (r *recorder) isOpen(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open[id]
}

func (r *recorder) closedOut() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.closed...)
}

func (r *recorder) saw(typ ari.EventType, channelID string) bool {
	for _, ev := range r.events() {
		if ev.Type == typ && ev.Channel != nil && ev.Channel.ID == channelID {
			return true
		}
	}
	return false
}

// waitUntil polls cond; the guard only turns a hang into a failure.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// running starts conn.Run and stops it at cleanup, checking it returns nil.
func running(t *testing.T, conn *ari.Conn, monitor, control ari.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- conn.Run(ctx, monitor, control) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel; want nil", err)
			}
		case <-time.After(guard):
			t.Errorf("Run did not return after cancel")
		}
	})
}

func newConn(t *testing.T, url string, clk clock.Clock, opts ...func(*ari.Options)) *ari.Conn {
	t.Helper()
	o := ari.Options{Name: "pbx1", URL: url, Username: testUser, Password: testPassword, Clock: clk,
		Rand: func() float64 { return 0.5 }}
	for _, f := range opts {
		f(&o)
	}
	conn, err := ari.NewConn(o)
	if err != nil {
		t.Fatalf("NewConn: %v", err)
	}
	return conn
}

// newQuietFake is a fake Asterisk on a clock nobody moves: these tests script no delays.
func newQuietFake(t *testing.T, id string) *aritest.Server {
	t.Helper()
	srv, err := aritest.New(aritest.Options{Clock: clock.NewFake(epoch), AsteriskID: id})
	if err != nil {
		t.Fatalf("starting fake Asterisk: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// reconnect moves conn's clock on until done holds, so that whatever backoff conn chose has
// passed; it does not care when conn starts waiting.
func reconnect(t *testing.T, clk *clock.Fake, what string, done func() bool) {
	t.Helper()
	waitUntil(t, what, func() bool {
		if done() {
			return true
		}
		clk.Advance(ari.DefaultBackoff.Max)
		return false
	})
}

func TestConnDeliversEventsAfterAResync(t *testing.T) {
	srv := newQuietFake(t, "")
	clk := clock.NewFake(epoch)
	var states []bool
	var stMu sync.Mutex
	conn := newConn(t, srv.URL()+"/ari", clk, func(o *ari.Options) {
		o.OnState = func(name string, up bool) {
			stMu.Lock()
			defer stMu.Unlock()
			if name == "pbx1" {
				states = append(states, up)
			}
		}
	})
	mon, ctl := newRecorder(), newRecorder()
	existing := srv.CreateChannel(aritest.ChannelSpec{Endpoint: "PJSIP/trunk", CallerNumber: "+31201234567"})
	running(t, conn, mon, ctl)
	waitUntil(t, "connected", conn.Connected)
	if !srv.Connected(ari.DefaultMonitorApp) || !srv.Connected(ari.DefaultControlApp) {
		t.Fatalf("fake sees monitor=%v control=%v; want both apps connected",
			srv.Connected(ari.DefaultMonitorApp), srv.Connected(ari.DefaultControlApp))
	}
	inbound := srv.CreateChannel(aritest.ChannelSpec{Endpoint: "PJSIP/trunk", CallerNumber: "+31207654321",
		Vars: map[string]string{"RTPAUDIOQOS": "noise", "VMSTATUS": "SUCCESS"}})
	// Both variables are set after ChannelCreated; wait for the second so the trail is whole.
	waitUntil(t, "ChannelCreated and both variables", func() bool {
		return strings.Count(strings.Join(mon.trail(), " "), "ChannelVarset:"+inbound.ID) >= 2
	})

	snaps := mon.resyncs()
	if len(snaps) != 1 || snaps[0].AsteriskID != "02:fc:00:00:00:01" || snaps[0].Restarted ||
		len(snaps[0].Channels) != 1 || snaps[0].Channels[0].ID != existing.ID || !snaps[0].At.Equal(epoch) {
		t.Fatalf("monitor resyncs = %+v; want one snapshot of the existing channel at %v", snaps, epoch)
	}
	if got, want := strings.Join(mon.trail(), " "), "resync ChannelCreated:"+inbound.ID+
		" ChannelVarset:"+inbound.ID+" ChannelVarset:"+inbound.ID; got != want {
		t.Errorf("monitor saw %q; want %q", got, want)
	}
	for _, ev := range mon.events() {
		if ev.AsteriskID != "02:fc:00:00:00:01" {
			t.Errorf("event %s has asterisk_id %q", ev.Type, ev.AsteriskID)
		}
	}
	if got := ctl.trail(); len(got) != 1 || got[0] != "resync" {
		t.Errorf("control app saw %q; want only its resync (it subscribes to nothing)", got)
	}
	stMu.Lock()
	defer stMu.Unlock()
	if len(states) != 1 || !states[0] {
		t.Errorf("OnState calls = %v; want [true]", states)
	}
}

func TestConnSurvivesAWebSocketDrop(t *testing.T) {
	srv := newQuietFake(t, "")
	clk := clock.NewFake(epoch)
	conn := newConn(t, srv.URL()+"/ari", clk)
	mon := newRecorder()
	running(t, conn, mon, nil)
	waitUntil(t, "connected", conn.Connected)

	call := srv.CreateChannel(aritest.ChannelSpec{Endpoint: "PJSIP/trunk", CallerNumber: "+31201234567"})
	staying := srv.CreateChannel(aritest.ChannelSpec{Endpoint: "PJSIP/trunk", CallerNumber: "+31201110000"})
	waitUntil(t, "both calls seen", func() bool { return mon.isOpen(call.ID) && mon.isOpen(staying.ID) })

	srv.DropWebSockets()
	waitUntil(t, "disconnect noticed", func() bool { return !conn.Connected() })
	srv.Hangup(call.ID, 16) // while nobody listens: Asterisk drops these events
	reconnect(t, clk, "the second resync", func() bool { return len(mon.resyncs()) == 2 })

	snap := mon.resyncs()[1]
	if snap.Restarted {
		t.Errorf("resync after a socket drop says Restarted; Asterisk did not restart")
	}
	if len(snap.Channels) != 1 || snap.Channels[0].ID != staying.ID {
		t.Errorf("snapshot after the drop lists %+v; want only %s", snap.Channels, staying.ID)
	}
	if got := mon.closedOut(); len(got) != 1 || got[0] != call.ID {
		t.Errorf("channels closed out by the resync = %v; want [%s]", got, call.ID)
	}
	if mon.saw(ari.EventChannelDestroyed, call.ID) {
		t.Errorf("a ChannelDestroyed sent while disconnected was delivered; the fake should have dropped it")
	}

	after := srv.CreateChannel(aritest.ChannelSpec{Endpoint: "PJSIP/trunk", CallerNumber: "+31202220000"})
	srv.Hangup(staying.ID, 16)
	want := []string{"resync", "ChannelCreated:" + call.ID, "ChannelCreated:" + staying.ID, "resync",
		"ChannelCreated:" + after.ID, "ChannelHangupRequest:" + staying.ID, "ChannelDestroyed:" + staying.ID}
	waitUntil(t, "events after the reconnect", func() bool { return mon.saw(ari.EventChannelDestroyed, staying.ID) })
	// Device states are not what this test is about; the fake's choice of them may change.
	var got []string
	for _, e := range mon.trail() {
		if !strings.HasPrefix(e, string(ari.EventDeviceStateChanged)) {
			got = append(got, e)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("monitor saw\n %q\nwant\n %q", got, want)
	}
	if !mon.isOpen(after.ID) || mon.isOpen(staying.ID) {
		t.Errorf("open calls wrong: after=%v staying=%v", mon.isOpen(after.ID), mon.isOpen(staying.ID))
	}
}

func TestConnMarksARestartedAsterisk(t *testing.T) {
	srv := newQuietFake(t, "")
	clk := clock.NewFake(epoch)
	conn := newConn(t, srv.URL()+"/ari", clk)
	mon := newRecorder()
	running(t, conn, mon, nil)
	waitUntil(t, "connected", conn.Connected)
	call := srv.CreateChannel(aritest.ChannelSpec{Endpoint: "PJSIP/trunk"})
	waitUntil(t, "call seen", func() bool { return mon.isOpen(call.ID) })

	srv.Restart()
	reconnect(t, clk, "the second resync", func() bool { return len(mon.resyncs()) == 2 })
	snaps := mon.resyncs()
	if snaps[0].Restarted || !snaps[1].Restarted {
		t.Errorf("Restarted = %v then %v; want false then true", snaps[0].Restarted, snaps[1].Restarted)
	}
	if !snaps[1].StartupTime.After(snaps[0].StartupTime) {
		t.Errorf("startup time went from %v to %v; want it to move on", snaps[0].StartupTime, snaps[1].StartupTime)
	}
	if mon.isOpen(call.ID) {
		t.Errorf("call %s still open after a restart", call.ID)
	}
}

// fakeEvents is a minimal ARI: REST answers for the resync and an events socket that writes
// the given frames on connect, each write bounded like Asterisk's websocket_write_timeout
// (generously: a write that cannot complete at all is what the tests look for). A silent
// fake never reads from its sockets, so it never answers a ping either.
type fakeEvents struct {
	*httptest.Server
	written chan error // the outcome of writing all frames, once per socket
}

// fakeBehaviour varies the fakeEvents server.
type fakeBehaviour struct {
	// silent: never read from the socket, so pings go unanswered.
	silent bool
	// filterStatus, when set, is the reply to PUT eventFilter, with message filterMessage.
	filterStatus  int
	filterMessage string
}

func newFakeEvents(t testing.TB, frames [][]byte, fb fakeBehaviour) *fakeEvents {
	t.Helper()
	f := &fakeEvents{written: make(chan error, 16)}
	stop := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ari/events", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPassword {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		if !fb.silent {
			ctx = c.CloseRead(ctx)
		}
		var werr error
		for _, fr := range frames {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			werr = c.Write(wctx, websocket.MessageText, fr)
			cancel()
			if werr != nil {
				break
			}
		}
		f.written <- werr
		select {
		case <-ctx.Done():
		case <-stop:
		}
	})
	mux.HandleFunc("PUT /ari/applications/{app}/eventFilter", func(w http.ResponseWriter, r *http.Request) {
		if fb.filterStatus != 0 {
			w.WriteHeader(fb.filterStatus)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": fb.filterMessage})
			return
		}
		_, _ = w.Write([]byte(`{}`))
	})
	mux.HandleFunc("GET /ari/asterisk/info", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"system":{"entity_id":"fe:ed:00:00:00:01","version":"22.5.0"},` +
			`"status":{"startup_time":"2026-11-23T08:00:00.000+0000"}}`))
	})
	mux.HandleFunc("GET /ari/channels", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`[]`)) })
	mux.HandleFunc("GET /ari/bridges", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`[]`)) })
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	t.Cleanup(func() { close(stop) }) // runs first: lets silent sockets' handlers return
	return f
}

func varset(seq int, pad string) []byte {
	data, _ := json.Marshal(map[string]any{
		"type": ari.EventChannelVarset, "timestamp": "2026-11-23T09:00:00.000+0000", "application": ari.DefaultMonitorApp,
		"variable": "SEQ", "value": strconv.Itoa(seq),
		"channel": map[string]any{"id": "1763888400.1", "name": "PJSIP/trunk-00000001", "state": "Up",
			"channelvars": map[string]string{"PAD": pad}},
	})
	return data
}

// metric reads one series from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func TestUnknownAndMalformedEventsAreCountedAndSkipped(t *testing.T) {
	frames := [][]byte{
		varset(1, ""),
		[]byte(`{"type":"ChannelQuantumEntangled","channel":{"id":"x"}}`),
		[]byte(`not json at all`),
		[]byte(`{"no":"type"}`),
		varset(2, ""),
	}
	f := newFakeEvents(t, frames, fakeBehaviour{})
	reg := prometheus.NewRegistry()
	m := ari.NewMetrics(reg)
	conn := newConn(t, f.URL+"/ari", clock.NewFake(epoch), func(o *ari.Options) { o.Metrics = m })
	mon := newRecorder()
	running(t, conn, mon, nil)
	waitUntil(t, "both good events", func() bool { return len(mon.events()) == 2 })
	if err := <-f.written; err != nil {
		t.Fatalf("writing frames: %v", err)
	}
	evs := mon.events()
	if evs[0].Value != "1" || evs[1].Value != "2" {
		t.Errorf("delivered %q, %q; want SEQ 1 then 2", evs[0].Value, evs[1].Value)
	}
	if evs[0].AsteriskID != "fe:ed:00:00:00:01" {
		t.Errorf("event without asterisk_id got %q; want the entity id from /asterisk/info", evs[0].AsteriskID)
	}
	for name, want := range map[string]float64{
		"callbackd_ari_unknown_events_total":   1,
		"callbackd_ari_malformed_events_total": 2,
	} {
		if got := metric(t, reg, name, nil); got != want {
			t.Errorf("%s = %v; want %v", name, got, want)
		}
	}
	if got := metric(t, reg, "callbackd_ari_events_total", map[string]string{"type": string(ari.EventChannelVarset)}); got != 2 {
		t.Errorf("ChannelVarset events = %v; want 2", got)
	}
	if got := metric(t, reg, "callbackd_ari_events_total", map[string]string{"type": string(ari.EventDial)}); got != 0 {
		t.Errorf("Dial events = %v; want a pre-initialised 0", got)
	}
	if got := metric(t, reg, "callbackd_ari_connected", map[string]string{"asterisk": "pbx1"}); got != 1 {
		t.Errorf("connected gauge = %v; want 1", got)
	}
	if got := metric(t, reg, "callbackd_ari_rest_requests_total", map[string]string{"method": "GET", "status": "200"}); got != 3 {
		t.Errorf("GET 200 requests = %v; want 3 (info, channels, bridges)", got)
	}
}

func TestASlowHandlerDoesNotStallTheReader(t *testing.T) {
	const n = 10000
	// 2 KiB per event makes 20 MB in flight, far more than the loopback socket buffers hold:
	// if the reader waited for the handler, the fake's writes could not complete.
	pad := strings.Repeat("x", 2048)
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = varset(i, pad)
	}
	f := newFakeEvents(t, frames, fakeBehaviour{})
	reg := prometheus.NewRegistry()
	conn := newConn(t, f.URL+"/ari", clock.NewFake(epoch), func(o *ari.Options) { o.Metrics = ari.NewMetrics(reg) })
	mon := newRecorder()
	unblock := mon.blocking()
	running(t, conn, mon, nil)
	waitUntil(t, "the handler to block on its first event", mon.isBlocked)
	select {
	case err := <-f.written:
		if err != nil {
			t.Fatalf("the fake could not write every event while the handler was blocked: %v", err)
		}
	case <-time.After(guard):
		t.Fatalf("the fake could not write every event while the handler was blocked")
	}
	backlog := func() float64 {
		return metric(t, reg, "callbackd_ari_event_backlog", map[string]string{"asterisk": "pbx1", "app": "monitor"})
	}
	waitUntil(t, "the reader to take every event off the socket", func() bool { return backlog() == n })
	unblock()
	waitUntil(t, "every event", func() bool { return mon.len() == n+1 }) // and the resync
	if b := backlog(); b != 0 {
		t.Errorf("backlog after catching up = %v; want 0", b)
	}
	for i, ev := range mon.events() {
		if ev.Value != strconv.Itoa(i) {
			t.Fatalf("event %d carries SEQ %s; want them in order", i, ev.Value)
		}
	}
}

// A handler so far behind that its backlog passes the bound gets a resync instead of more
// memory: the socket is closed, what was still queued is dropped, the overflow is counted,
// and after the reconnect the handler hears the resync first and the new socket's events
// after it. The backlog never holds more than the bound.
func TestABacklogPastItsBoundEndsInAResyncNotInMoreMemory(t *testing.T) {
	const n, bound = 1000, 100
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = varset(i, "")
	}
	f := newFakeEvents(t, frames, fakeBehaviour{})
	reg := prometheus.NewRegistry()
	clk := clock.NewFake(epoch)
	conn := newConn(t, f.URL+"/ari", clk, func(o *ari.Options) {
		o.Metrics = ari.NewMetrics(reg)
		o.MaxBacklogEvents = bound
	})
	mon := newRecorder()
	unblock := mon.blocking()
	running(t, conn, mon, nil)
	// On a loaded machine the reader can pass the bound before the handler is handed its
	// first event: that socket's events are dropped unseen and its resync waits out the
	// backoff, so the clock moves on until a session's event reaches the handler.
	reconnect(t, clk, "the handler to block on an event", mon.isBlocked)
	overflows := func() float64 {
		return metric(t, reg, "callbackd_ari_backlog_overflows_total", map[string]string{"asterisk": "pbx1"})
	}
	backlog := func() float64 {
		return metric(t, reg, "callbackd_ari_event_backlog", map[string]string{"asterisk": "pbx1", "app": "monitor"})
	}
	waitUntil(t, "the backlog to overflow", func() bool { return overflows() >= 1 })
	if b := backlog(); b > bound {
		t.Errorf("backlog after the overflow = %v; want at most the bound %d", b, bound)
	}
	unblock()
	reconnect(t, clk, "a resync after the overflow and a handler that caught up", func() bool {
		return len(mon.resyncs()) >= 2 && backlog() == 0
	})
	if got := len(mon.events()); got >= len(mon.resyncs())*n {
		t.Errorf("handler saw %d events; want fewer than every socket wrote: the overflowed backlog is dropped", got)
	}
}

func TestAPeerThatStopsAnsweringPingsIsReconnected(t *testing.T) {
	f := newFakeEvents(t, [][]byte{varset(1, "")}, fakeBehaviour{silent: true})
	clk := clock.NewFake(epoch)
	conn := newConn(t, f.URL+"/ari", clk, func(o *ari.Options) {
		// Long enough for the resync's REST calls on a loaded machine; it is also how long the
		// unanswered ping is waited for.
		o.RequestTimeout = time.Second
		o.PingInterval = 10 * time.Second
	})
	mon := newRecorder()
	running(t, conn, mon, nil)
	reconnect(t, clk, "the first resync", func() bool { return len(mon.resyncs()) >= 1 })
	reconnect(t, clk, "a new connection after the unanswered ping", func() bool { return len(mon.resyncs()) == 2 })
	if got := strings.Join(mon.trail(), " "); !strings.HasPrefix(got, "resync ChannelVarset:1763888400.1 resync") {
		t.Errorf("monitor saw %q; want a resync, the event, and a resync for the new socket", got)
	}
}

func TestAnAsteriskWithoutEventFilterStillConnects(t *testing.T) {
	tests := []struct {
		name      string
		fb        fakeBehaviour
		connected bool
	}{
		{"405 from an Asterisk without the resource", fakeBehaviour{filterStatus: 405, filterMessage: "Invalid method"}, true},
		{"404 Resource not found", fakeBehaviour{filterStatus: 404, filterMessage: "Resource not found"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEvents(t, [][]byte{varset(1, "")}, tt.fb)
			conn := newConn(t, f.URL+"/ari", clock.NewFake(epoch))
			mon := newRecorder()
			running(t, conn, mon, nil)
			waitUntil(t, "the event", func() bool { return len(mon.events()) == 1 })
			if !conn.Connected() {
				t.Errorf("not connected")
			}
		})
	}
	t.Run("404 Application not found is a failed resync", func(t *testing.T) {
		f := newFakeEvents(t, [][]byte{varset(1, "")}, fakeBehaviour{filterStatus: 404, filterMessage: "Application not found"})
		clk := &recordingClock{Fake: clock.NewFake(epoch)}
		conn := newConn(t, f.URL+"/ari", clk)
		mon := newRecorder()
		running(t, conn, mon, nil)
		backoff := ari.DefaultBackoff.Delay(0, 0.5)
		waitUntil(t, "a backoff after the failed resync", func() bool {
			for _, d := range clk.recorded() {
				if d == backoff {
					return true
				}
			}
			return false
		})
		if n := len(mon.entries()); n != 0 || conn.Connected() {
			t.Errorf("handler got %d entries, connected=%v; want nothing delivered and not connected", n, conn.Connected())
		}
	})
}

// recordingClock notes every wait it is asked for.
type recordingClock struct {
	*clock.Fake
	mu    sync.Mutex
	waits []time.Duration
}

func (c *recordingClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	return c.Fake.After(d)
}

func (c *recordingClock) recorded() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// collectBackoff lets conn fail n times, moving the clock on by each wait it asks for.
func collectBackoff(t *testing.T, clk *recordingClock, n int) []time.Duration {
	t.Helper()
	for i := 1; i <= n; i++ {
		waitUntil(t, fmt.Sprintf("backoff wait %d", i), func() bool { return len(clk.recorded()) >= i && clk.Waiters() > 0 })
		clk.Advance(clk.recorded()[i-1])
	}
	return clk.recorded()[:n]
}

func TestConnBacksOffExponentiallyWithJitterUpToTheCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/ari"
	ln.Close()
	clk := &recordingClock{Fake: clock.NewFake(epoch)}
	rands := []float64{0, 0.5, 0.999, 0.25, 0, 0.5, 0, 0.75, 0}
	var i int
	var mu sync.Mutex
	reg := prometheus.NewRegistry()
	conn := newConn(t, refused, clk, func(o *ari.Options) {
		o.Backoff = ari.Backoff{Initial: time.Second, Max: 20 * time.Second, Multiplier: 2, Jitter: 0.2}
		o.Metrics = ari.NewMetrics(reg)
		o.Rand = func() float64 {
			mu.Lock()
			defer mu.Unlock()
			r := rands[i%len(rands)]
			i++
			return r
		}
	})
	running(t, conn, newRecorder(), nil)
	got := collectBackoff(t, clk, 8)
	ms := time.Millisecond
	// Worked out by hand from Initial·2^n capped at 20 s, shortened by 20 %·r:
	want := []time.Duration{
		1 * time.Second,         // 1 s, r=0
		1800 * ms,               // 2 s, r=0.5  → −10 %
		time.Duration(3.2008e9), // 4 s, r=0.999 → −19.98 %
		7600 * ms,               // 8 s, r=0.25 → −5 %
		16 * time.Second,        // 16 s, r=0
		18 * time.Second,        // 32 s capped to 20 s, r=0.5
		20 * time.Second,        // cap, r=0
		17 * time.Second,        // cap, r=0.75
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("wait %d = %v; want %v", k, got[k], want[k])
		}
	}
	if conn.Connected() {
		t.Errorf("Connected() true against a closed port")
	}
	if r := metric(t, reg, "callbackd_ari_reconnects_total", map[string]string{"asterisk": "pbx1"}); r < 7 {
		t.Errorf("reconnects_total = %v; want at least 7", r)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := ari.DefaultBackoff
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0, 500 * time.Millisecond},
		{0, 0.5, 450 * time.Millisecond},
		{1, 0, time.Second},
		{5, 0, 16 * time.Second},
		{6, 0, 30 * time.Second},
		{6, 1, 24 * time.Second}, // r out of range is clamped just below 1
		{1000, 0, 30 * time.Second},
		{-3, 0, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		got := b.Delay(tt.attempt, tt.r)
		if diff := got - tt.want; diff > time.Microsecond || diff < -time.Microsecond {
			t.Errorf("Delay(%d, %v) = %v; want %v", tt.attempt, tt.r, got, tt.want)
		}
	}
}

func TestWrongPasswordIsLoggedWithoutThePasswordAndRetriedSlowly(t *testing.T) {
	const secret = "not-the-s3cret"
	srv := newQuietFake(t, "")
	clk := &recordingClock{Fake: clock.NewFake(epoch)}
	core, logs := observer.New(zap.DebugLevel)
	conn := newConn(t, srv.URL()+"/ari", clk, func(o *ari.Options) {
		o.Password = secret
		o.Logger = zap.New(core)
	})
	running(t, conn, newRecorder(), nil)
	got := collectBackoff(t, clk, 3)
	for k, d := range got {
		if want := ari.DefaultBackoff.Delay(1000, 0.5); d != want {
			t.Errorf("wait %d after a 401 = %v; want the capped %v", k, d, want)
		}
	}
	rejected := 0
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, secret) {
			t.Errorf("log line leaks the password: %s", line)
		}
		if strings.Contains(e.Message, "rejected the credentials") && e.Level == zap.ErrorLevel {
			rejected++
		}
	}
	if rejected == 0 {
		t.Errorf("no error log says the credentials were rejected; logs: %v", logs.All())
	}
}

func TestNewConnRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts ari.Options
		want string
	}{
		{"no URL", ari.Options{Username: "u"}, "URL is empty"},
		{"same app twice", ari.Options{URL: "http://pbx:8088/ari", Username: "u", MonitorApp: "cb", ControlApp: "cb"}, "must differ"},
		{"backoff max below initial", ari.Options{URL: "http://pbx:8088/ari", Username: "u",
			Backoff: ari.Backoff{Initial: time.Second, Max: time.Millisecond, Multiplier: 2}}, "less than initial"},
		{"backoff shrinking", ari.Options{URL: "http://pbx:8088/ari", Username: "u",
			Backoff: ari.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 0.5}}, "multiplier"},
		{"jitter of 100 %", ari.Options{URL: "http://pbx:8088/ari", Username: "u",
			Backoff: ari.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 1}}, "jitter"},
		{"no username", ari.Options{URL: "http://pbx:8088/ari"}, "username is empty"},
		{"negative backlog bound", ari.Options{URL: "http://pbx:8088/ari", Username: "u", MaxBacklogEvents: -1}, "backlog bounds"},
		{"negative backlog bytes", ari.Options{URL: "http://pbx:8088/ari", Username: "u", MaxBacklogBytes: -1}, "backlog bounds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ari.NewConn(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewConn error = %v; want one mentioning %q", err, tt.want)
			}
		})
	}
	conn := newConn(t, "http://pbx:8088/ari", clock.NewFake(epoch))
	if err := conn.Run(context.Background(), nil, nil); err == nil || !strings.Contains(err.Error(), "monitor handler is nil") {
		t.Errorf("Run without a monitor handler: %v; want an error saying so", err)
	}
}

// sharedRecorder serialises two connections' calls into one recorder, as a Handler shared by
// several Asterisk servers must.
type sharedRecorder struct {
	mu sync.Mutex
	*recorder
}

func (s *sharedRecorder) HandleEvent(ev *ari.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recorder.HandleEvent(ev)
}

func (s *sharedRecorder) Resync(snap ari.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recorder.Resync(snap)
}

func TestManagerRunsSeveralAsterisksAndTagsTheirEvents(t *testing.T) {
	a := newQuietFake(t, "02:fc:00:00:00:0a")
	b := newQuietFake(t, "02:fc:00:00:00:0b")
	clk := clock.NewFake(epoch)
	ca := newConn(t, a.URL()+"/ari", clk, func(o *ari.Options) { o.Name = "amsterdam" })
	cb := newConn(t, b.URL()+"/ari", clk, func(o *ari.Options) { o.Name = "rotterdam" })
	m, err := ari.NewManager(ca, cb)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	if got := m.Conns(); len(got) != 2 || got[0] != ca || got[1] != cb {
		t.Errorf("Conns() = %v; want amsterdam, rotterdam in configuration order", got)
	}
	h := &sharedRecorder{recorder: newRecorder()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, h, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Manager.Run: %v", err)
		}
	}()
	waitUntil(t, "both connected", func() bool {
		c := m.Connected()
		return c["amsterdam"] && c["rotterdam"]
	})
	chA := a.CreateChannel(aritest.ChannelSpec{Endpoint: "PJSIP/trunk", ID: "call-a"})
	chB := b.CreateChannel(aritest.ChannelSpec{Endpoint: "PJSIP/trunk", ID: "call-b"})
	waitUntil(t, "both calls", func() bool { return h.saw(ari.EventChannelCreated, chA.ID) && h.saw(ari.EventChannelCreated, chB.ID) })
	for _, ev := range h.events() {
		want := map[string]string{"call-a": "02:fc:00:00:00:0a", "call-b": "02:fc:00:00:00:0b"}[ev.Channel.ID]
		if ev.AsteriskID != want {
			t.Errorf("%s of %s tagged %q; want %q", ev.Type, ev.Channel.ID, ev.AsteriskID, want)
		}
	}
	for _, key := range []string{"02:fc:00:00:00:0b", "rotterdam"} {
		c, ok := m.Client(key)
		if !ok || c != cb.Client() {
			t.Errorf("Client(%q) = %v, %v; want rotterdam's client", key, c, ok)
		}
	}
	if _, ok := m.Client("utrecht"); ok {
		t.Errorf("Client of an unknown Asterisk found something")
	}
	b.DropWebSockets()
	waitUntil(t, "rotterdam down, amsterdam up", func() bool {
		c := m.Connected()
		return c["amsterdam"] && !c["rotterdam"]
	})
}

func TestNewManagerRejectsBadInput(t *testing.T) {
	c1 := newConn(t, "http://pbx1:8088/ari", clock.NewFake(epoch))
	c2 := newConn(t, "http://pbx2:8088/ari", clock.NewFake(epoch)) // both named pbx1 by newConn
	tests := []struct {
		name  string
		conns []*ari.Conn
		want  string
	}{
		{"none", nil, "no Asterisk connection"},
		{"nil", []*ari.Conn{c1, nil}, "connection 1 is nil"},
		{"duplicate names", []*ari.Conn{c1, c2}, `two connections are named "pbx1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ari.NewManager(tt.conns...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewManager error = %v; want one mentioning %q", err, tt.want)
			}
		})
	}
}

// A connection that drops right after every resync (a proxy cutting idle sockets, another
// process taking the app name) is not healthy: the waits keep growing instead of restarting
// at Initial, so callbackd does not re-read every channel twice a second. One that stayed up
// longer than Max starts the schedule over.
func TestAConnectionThatFlapsAfterEachResyncKeepsBackingOff(t *testing.T) {
	srv := newQuietFake(t, "")
	clk := &recordingClock{Fake: clock.NewFake(epoch)}
	conn := newConn(t, srv.URL()+"/ari", clk, func(o *ari.Options) {
		o.Backoff = ari.Backoff{Initial: time.Second, Max: 16 * time.Second, Multiplier: 2}
		o.PingInterval = -1
		o.Rand = func() float64 { return 0 }
	})
	running(t, conn, newRecorder(), nil)
	flap := func(i int) time.Duration {
		t.Helper()
		waitUntil(t, fmt.Sprintf("connection %d", i), conn.Connected)
		srv.DropWebSockets()
		waitUntil(t, fmt.Sprintf("backoff wait %d", i), func() bool { return len(clk.recorded()) >= i && clk.Waiters() > 0 })
		w := clk.recorded()[i-1]
		clk.Advance(w)
		return w
	}
	var got []time.Duration
	for i := 1; i <= 3; i++ {
		got = append(got, flap(i))
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("waits after connections that dropped at once: %v; want %v", got, want)
	}
	// Now a connection that stays up longer than Max: the next drop waits Initial again.
	waitUntil(t, "connection 4", conn.Connected)
	clk.Advance(17 * time.Second)
	srv.DropWebSockets()
	waitUntil(t, "backoff wait 4", func() bool { return len(clk.recorded()) >= 4 && clk.Waiters() > 0 })
	if w := clk.recorded()[3]; w != time.Second {
		t.Errorf("wait after a connection that was up 17 s: %v; want Initial (1s)", w)
	}
}

// An Asterisk that is down from the first moment must show as disconnected, not as missing
// data, or an alert on callbackd_ari_connected == 0 would never fire.
func TestConnectionSeriesExistBeforeTheFirstConnect(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := ari.NewConn(ari.Options{Name: "pbx1", URL: "http://127.0.0.1:1/ari", Username: "u", Password: "p", Metrics: ari.NewMetrics(reg)}); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, reg, "callbackd_ari_connected", map[string]string{"asterisk": "pbx1"}); got != 0 {
		t.Errorf("connected gauge = %v before any connect; want 0", got)
	}
	if got := metric(t, reg, "callbackd_ari_reconnects_total", map[string]string{"asterisk": "pbx1"}); got != 0 {
		t.Errorf("reconnects = %v before any connect; want 0", got)
	}
}

// A second client registering our apps (a second daemon with the same names, a stray tool)
// gets Asterisk's events from then on: the first connection counts as down at once — its
// agents are not rung — and says why, naming the app. After the longest reconnect delay, and
// not before, it takes the app back (the other client then gets ApplicationReplaced), so a
// stray tool does not leave it deaf for good and two daemons do not fight in a loop.
func TestAnApplicationTakenOverByAnotherClientMakesTheConnectionDownAndSaysWhy(t *testing.T) {
	srv := newQuietFake(t, "fe:ed:00:00:00:01")
	var mu sync.Mutex
	var states []bool
	clk := clock.NewFake(epoch)
	first := newConn(t, srv.URL()+"/ari", clk, func(o *ari.Options) {
		o.OnState = func(_ string, up bool) {
			mu.Lock()
			defer mu.Unlock()
			states = append(states, up)
		}
	})
	running(t, first, newRecorder(), newRecorder())
	waitUntil(t, "the first connection", first.Connected)
	if h := first.Health(); h != "" {
		t.Fatalf("health of a connected connection = %q; want none", h)
	}
	second := newConn(t, srv.URL()+"/ari", clock.NewFake(epoch))
	running(t, second, newRecorder(), newRecorder())
	waitUntil(t, "the second connection", second.Connected)
	waitUntil(t, "the first to count as down", func() bool { return !first.Connected() })
	if h := first.Health(); !strings.Contains(h, "taken over by another ARI client") || !strings.Contains(h, ari.DefaultMonitorApp) && !strings.Contains(h, ari.DefaultControlApp) {
		t.Errorf("health = %q; want it to name the app taken over", h)
	}
	mu.Lock()
	if len(states) < 2 || states[0] != true || states[len(states)-1] != false {
		t.Errorf("OnState calls %v; want up, then down", states)
	}
	mu.Unlock()
	clk.Advance(ari.DefaultBackoff.Max - time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if first.Connected() {
		t.Fatal("the first connection took the app back before the longest reconnect delay")
	}
	reconnect(t, clk, "the first connection to take its apps back", first.Connected)
	waitUntil(t, "the second connection to count as down", func() bool { return !second.Connected() })
	if h := first.Health(); h != "" {
		t.Errorf("health after taking the apps back = %q; want none", h)
	}
}
