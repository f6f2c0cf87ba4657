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
