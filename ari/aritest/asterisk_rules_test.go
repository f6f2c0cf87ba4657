package aritest

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
)

// POST /channels/{id}/dial?caller=X copies X's caller id into the dialled channel's connected
// line (res/ari/resource_channels.c, ast_ari_channels_dial: ast_connected_line_copy_from_caller),
// and chan_pjsip sends the connected line as the From of the first INVITE: what the callee's
// phone shows. A CONNECTEDLINE set at create time is overwritten by the dial.
func TestDialWithACallerShowsTheCallersCallerIDToTheCallee(t *testing.T) {
	s, _ := newFake(t)
	s.SetEndpoint("PJSIP/1001", Answers(time.Second))
	s.SetEndpoint("PJSIP/+31201234501@provider", Rings())
	_ = dialEvents(t, s, "app=cbctl")

	status, reply := restCall(t, s, "POST", "/ari/channels?app=cbctl&endpoint=PJSIP%2F1001&channelId=agent"+
		"&callerId="+url.QueryEscape(`"Jan Klant" <+31201234501>`), nil)
	if status != 200 {
		t.Fatalf("originate the agent: %d %v", status, reply)
	}
	waitFor(t, "the agent to answer", func() bool { return stateOf(s, "agent") == "Up" })

	status, reply = restCall(t, s, "POST", "/ari/channels/create?app=cbctl&endpoint="+
		url.QueryEscape("PJSIP/+31201234501@provider")+"&channelId=customer",
		map[string]any{"variables": map[string]string{"CONNECTEDLINE(num)": "+31205550100", "CONNECTEDLINE(name)": "Acme"}})
	if status != 200 {
		t.Fatalf("create the customer leg: %d %v", status, reply)
	}
	if status, reply := restCall(t, s, "POST", "/ari/channels/customer/dial?caller=agent&timeout=30", nil); status != 204 {
		t.Fatalf("dial the customer leg: %d %v", status, reply)
	}
	for _, ch := range s.Channels() {
		if ch.ID != "customer" {
			continue
		}
		if got, want := fmt.Sprintf("%q <%s>", ch.Connected.Name, ch.Connected.Number), `"Jan Klant" <+31201234501>`; got != want {
			t.Errorf("customer leg's connected line after dial?caller=agent is %s; want the agent leg's caller id %s", got, want)
		}
		return
	}
	t.Fatal("the customer leg is gone")
}

// A phone's device state is the aggregate of its channels' states (chan_pjsip_devicestate,
// ast_state_chan2dev, ast_devstate_aggregate_result): a phone that is dialling out (its
// channel in state Ring) is INUSE, one that talks while a second call rings is RINGINUSE.
func TestDeviceStateAggregatesEveryChannelOfThePhone(t *testing.T) {
	cases := []struct {
		name   string
		states []string
		want   string
	}{
		{"idle", nil, "NOT_INUSE"},
		{"dialling out, not yet answered", []string{"Ring"}, "INUSE"},
		{"ringing", []string{"Ringing"}, "RINGING"},
		{"talking", []string{"Up"}, "INUSE"},
		{"talking while a second call rings", []string{"Up", "Ringing"}, "RINGINUSE"},
		{"a second call rings while talking", []string{"Ringing", "Up"}, "RINGINUSE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newFake(t)
			s.SetEndpoint("PJSIP/1001", Rings())
			for _, st := range tc.states {
				s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/1001", CallerNumber: "1001", State: st})
			}
			status, reply := restCall(t, s, "GET", "/ari/deviceStates/PJSIP%2F1001", nil)
			if status != 200 {
				t.Fatalf("GET deviceStates: %d %v", status, reply)
			}
			if got := str(reply.(map[string]any)["state"]); got != tc.want {
				t.Errorf("device with channels %q is %s; want %s", tc.states, got, tc.want)
			}
		})
	}
}

// Asterisk sends EndpointStateChange for every change of the endpoint's snapshot
// (res/stasis/app.c, sub_endpoint_update_handler), and a channel created on or gone from the
// endpoint changes its channel_ids: an endpoint: subscriber hears the registration state
// together with the endpoint's current channels each time.
func TestEndpointSubscriberHearsTheEndpointsChannelsComeAndGo(t *testing.T) {
	s, _ := newFake(t)
	s.SetEndpoint("PJSIP/1001", Answers(time.Second))
	es := dialEvents(t, s, "app=cbctl")
	subscribe(t, s, "cbctl", "endpoint:PJSIP/1001")
	ch := s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/1001", CallerNumber: "1001"})
	s.Hangup(ch.ID, 16)
	waitDelivered(t, s, es, "cbctl")
	var got []string
	for _, ev := range es.byApp("cbctl") {
		if evType(ev) != ari.EventEndpointStateChange {
			continue
		}
		ep := obj(ev, "endpoint")
		got = append(got, fmt.Sprintf("%s %v", ep["state"], ep["channel_ids"]))
	}
	want := []string{"online [" + ch.ID + "]", "online []"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("EndpointStateChange (state channel_ids) got %q; want %q", got, want)
	}
}

func stateOf(s *Server, id string) string {
	for _, ch := range s.Channels() {
		if ch.ID == id {
			return ch.State
		}
	}
	return ""
}

// res_ari splits the path as sent and decodes each segment with ast_uri_http_legacy
// (res_ari.c, ast_ari_invoke), which turns '+' into a space as in a form: a '+' that a client
// leaves unescaped in a path segment (Go's url.PathEscape does) names another resource than
// one escaped as %2B.
func TestPlusInAPathSegmentIsASpaceAsInAsterisksLegacyDecoding(t *testing.T) {
	cases := []struct {
		name string
		path string
		want int
	}{
		{"plus escaped", "/ari/channels/cb%2B1", 200},
		{"plus as sent by url.PathEscape", "/ari/channels/cb+1", 404},
		{"space spelled as plus", "/ari/channels/cb+2", 200},
	}
	s, _ := newFake(t)
	s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/1001", ID: "cb+1"})
	s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/1001", ID: "cb 2"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if status, reply := restCall(t, s, "GET", tc.path, nil); status != tc.want {
				t.Errorf("GET %s: %d %v; want %d", tc.path, status, reply, tc.want)
			}
		})
	}
}

// DELETE /channels/{id}?reason= takes the reasons of res/ari/resource_channels.c
// (convert_reason_to_hangup_code): "timeout" is AST_CAUSE_NO_USER_RESPONSE (18, not 19) and
// the network failure is spelled "failure"; any other reason is a 400. A channel hung up
// before it answered is destroyed with the reason's cause and its text (ast_cause2str).
func TestHangupReasonsAreAsterisks(t *testing.T) {
	cases := []struct {
		reason     string
		wantStatus int
		wantCause  string // "cause (cause_txt)" of ChannelDestroyed, for a 204
	}{
		{reason: "no_answer", wantStatus: 204, wantCause: "19 (User alerting, no answer)"},
		{reason: "timeout", wantStatus: 204, wantCause: "18 (No user responding)"},
		{reason: "failure", wantStatus: 204, wantCause: "38 (Network out of order)"},
		{reason: "unallocated", wantStatus: 204, wantCause: "1 (Unallocated (unassigned) number)"},
		{reason: "answered_elsewhere", wantStatus: 204, wantCause: "26 (Answered elsewhere)"},
		{reason: "failed", wantStatus: 400},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			s, _ := newFake(t)
			s.SetEndpoint("PJSIP/1003", Rings())
			mon := dialEvents(t, s, "app=cbmon&subscribeAll=true")
			id := s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/1003", State: "Ringing"}).ID
			status, reply := restCall(t, s, "DELETE", "/ari/channels/"+id+"?reason="+tc.reason, nil)
			if status != tc.wantStatus {
				t.Fatalf("DELETE reason=%s: %d %v; want %d", tc.reason, status, reply, tc.wantStatus)
			}
			if status != 204 {
				return
			}
			waitDelivered(t, s, mon, "cbmon")
			got := ""
			for _, ev := range mon.byApp("cbmon") {
				if evType(ev) == ari.EventChannelDestroyed {
					got = fmt.Sprintf("%s (%s)", str(ev["cause"]), ev["cause_txt"])
				}
			}
			if got != tc.wantCause {
				t.Errorf("DELETE reason=%s of a ringing channel: ChannelDestroyed %q; want %q", tc.reason, got, tc.wantCause)
			}
		})
	}
}

// What res/ari/resource_channels.c answers when a channel cannot be dialled, played to or have
// a variable set: find_control first (404 "Channel not found" for no channel, 409 "Channel not
// in Stasis application" for one outside Stasis), then for /dial the state (409 unless Down).
// A dial's caller that does not exist is ignored (ast_channel_get_by_name → NULL: no copy).
// GET variable needs no Stasis, and its 404 says "Provided channel was not found".
func TestChannelOperationPreconditionsAreAsterisks(t *testing.T) {
	cases := []struct {
		method, path string
		wantStatus   int
		wantMessage  string
	}{
		{"POST", "/ari/channels/gone/dial", 404, "Channel not found"},
		{"POST", "/ari/channels/outside/dial", 409, "Channel not in Stasis application"},
		{"POST", "/ari/channels/agent/dial", 409, "Channel is not in the 'Down' state"},
		{"POST", "/ari/channels/down/dial?caller=gone&timeout=30", 204, ""},
		{"POST", "/ari/channels/outside/play?media=sound:beep", 409, "Channel not in Stasis application"},
		{"POST", "/ari/channels/agent/play?media=sound:beep", 201, ""},
		{"POST", "/ari/channels/outside/variable?variable=X&value=1", 409, "Channel not in Stasis application"},
		{"POST", "/ari/channels/gone/variable?variable=X&value=1", 404, "Channel not found"},
		{"GET", "/ari/channels/gone/variable?variable=X", 404, "Provided channel was not found"},
	}
	s, _ := newFake(t)
	s.SetEndpoint("PJSIP/1001", Answers(time.Millisecond))
	s.SetEndpoint("PJSIP/1003", Rings())
	_ = dialEvents(t, s, "app=cbctl")
	s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/trunk", ID: "outside", CallerNumber: "+31201234501"})
	for _, setup := range []string{
		"/ari/channels?app=cbctl&endpoint=PJSIP%2F1001&channelId=agent",
		"/ari/channels/create?app=cbctl&endpoint=PJSIP%2F1003&channelId=down",
	} {
		if status, reply := restCall(t, s, "POST", setup, nil); status != 200 && status != 204 {
			t.Fatalf("POST %s: %d %v", setup, status, reply)
		}
	}
	waitFor(t, "the agent to answer", func() bool { return stateOf(s, "agent") == "Up" })
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, reply := restCall(t, s, tc.method, tc.path, nil)
			if status != tc.wantStatus {
				t.Fatalf("%s %s: %d %v; want %d %q", tc.method, tc.path, status, reply, tc.wantStatus, tc.wantMessage)
			}
			if m, _ := reply.(map[string]any); tc.wantMessage != "" && (str(m["message"]) != tc.wantMessage || len(m) != 1) {
				t.Errorf("%s %s: body %v; want {\"message\": %q}", tc.method, tc.path, reply, tc.wantMessage)
			}
		})
	}
}
