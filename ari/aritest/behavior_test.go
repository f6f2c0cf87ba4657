package aritest

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
)

// A customer leg created and dialled over ARI, as the dialer will do it, ends the way the
// recordings show for each scripted phone (traces 07, 12, 13 and README "Things a fake must
// get right" §3): only ANSWER comes as a final Dial event; failures are told by the causes.
func TestScriptedCustomerPhones(t *testing.T) {
	cases := []struct {
		name     string
		behavior Behavior
		timeout  int // dial?timeout=
		want     []string
	}{
		{"answers after 2 s", Answers(2 * time.Second), 20, []string{
			`Dial ""`, `Dial "RINGING"`, "ChannelStateChange Ringing", "ChannelStateChange Up", `Dial "ANSWER"`}},
		{"busy: SIP 486, no Dial BUSY", Busy(2 * time.Second), 20, []string{
			`Dial ""`, `Dial "RINGING"`, "ChannelStateChange Ringing",
			"ChannelHangupRequest cause=17 tech=486", "ChannelDestroyed cause=17 tech=486"}},
		{"rings until our dial timeout: 19/480", Rings(), 6, []string{
			`Dial ""`, `Dial "RINGING"`, "ChannelStateChange Ringing",
			"ChannelHangupRequest cause=32 tech=-", "ChannelDestroyed cause=19 tech=480"}},
		{"voicemail answers, takes a message and hangs up", Voicemail(3*time.Second, 10*time.Second), 20, []string{
			`Dial ""`, `Dial "RINGING"`, "ChannelStateChange Ringing", "ChannelStateChange Up", `Dial "ANSWER"`,
			"ChannelHangupRequest cause=16 tech=-", "ChannelDestroyed cause=16 tech=-"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newFake(t)
			s.SetEndpoint("PJSIP/2001", tc.behavior)
			ctl := dialEvents(t, s, "app=cbctl")
			status, reply := restCall(t, s, "POST", "/ari/channels/create?app=cbctl&endpoint="+url.QueryEscape("PJSIP/2001"), nil)
			if status != 200 {
				t.Fatalf("create: %d %v", status, reply)
			}
			id := str(reply.(map[string]any)["id"])
			if status, reply := restCall(t, s, "POST", fmt.Sprintf("/ari/channels/%s/dial?timeout=%d", id, tc.timeout), nil); status != 204 {
				t.Fatalf("dial: %d %v", status, reply)
			}
			if tc.behavior.HangupAfter == 0 && tc.behavior.Answer {
				waitFor(t, "the answer", func() bool { return strings.Contains(strings.Join(legEvents(ctl, id), " "), "ANSWER") })
				restCall(t, s, "DELETE", "/ari/channels/"+id, nil)
			}
			waitFor(t, "the leg to end", func() bool {
				ev := legEvents(ctl, id)
				return len(ev) > 0 && strings.HasPrefix(ev[len(ev)-1], string(ari.EventChannelDestroyed))
			})
			got := legEvents(ctl, id)
			if tc.behavior.HangupAfter == 0 && tc.behavior.Answer {
				got = got[:len(got)-2] // our own DELETE: tested by the fidelity tests
			}
			canonicalRinging(got)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("events of the leg:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// legEvents lists the significant events of one channel, as short keys.
func legEvents(es *eventSocket, id string) []string {
	var out []string
	for _, ev := range es.snapshot() {
		ch := obj(ev, "channel")
		if evType(ev) == ari.EventDial {
			ch = obj(ev, "peer")
		}
		if str(ch["id"]) != id {
			continue
		}
		switch typ := evType(ev); typ {
		case ari.EventDial:
			out = append(out, fmt.Sprintf("Dial %q", ev["dialstatus"]))
		case ari.EventChannelStateChange:
			out = append(out, string(typ)+" "+str(ch["state"]))
		case ari.EventChannelHangupRequest, ari.EventChannelDestroyed:
			out = append(out, fmt.Sprintf("%s cause=%s tech=%s", typ, str(ev["cause"]), str(ev["tech_cause"])))
		}
	}
	return out
}

// An unregistered phone cannot be originated or created: HTTP 500 "Allocation failed" and not
// a single event (trace 10).
func TestUnavailablePhoneIsAllocationFailed(t *testing.T) {
	s, _ := newFake(t)
	s.SetEndpoint("PJSIP/1004", Unavailable())
	// Registered before the monitor connects, so that its DeviceStateChanged is not the first
	// thing the monitor sees.
	s.SetEndpoint("PJSIP/1001", Answers(time.Second))
	mon := dialEvents(t, s, "app=cbmon&subscribeAll=true")
	for _, path := range []string{
		"/ari/channels?app=cbctl&endpoint=" + url.QueryEscape("PJSIP/1004"),
		"/ari/channels/create?app=cbctl&endpoint=" + url.QueryEscape("PJSIP/1004"),
		"/ari/channels?app=cbctl&endpoint=" + url.QueryEscape("PJSIP/9999"), // never configured
	} {
		status, reply := restCall(t, s, "POST", path, nil)
		m, _ := reply.(map[string]any)
		if status != 500 || m["error"] != "Allocation failed" {
			t.Errorf("POST %s: %d %v; want 500 {\"error\":\"Allocation failed\"}", path, status, reply)
		}
	}
	if n := len(s.Channels()); n != 0 {
		t.Errorf("%d channels exist after failed originates", n)
	}
	// A channel created afterwards is the first event the monitor sees.
	restCall(t, s, "POST", "/ari/channels/create?app=cbctl&endpoint="+url.QueryEscape("PJSIP/1001"), nil)
	waitFor(t, "the created channel", func() bool { return len(mon.snapshot()) > 0 })
	if first := evType(mon.snapshot()[0]); first != ari.EventChannelCreated {
		t.Errorf("first monitor event %s; the failed originates must not have emitted any", first)
	}
}

// A phone's device state covers all its channels: when a second call to a phone that is
// already talking ends, the phone is still in use (the dialer's availability rests on it).
func TestDeviceStateCoversEveryChannelOfThePhone(t *testing.T) {
	s, _ := newFake(t)
	s.SetEndpoint("PJSIP/1001", Answers(time.Second))
	talking := s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/1001", State: "Up"})
	second := s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/1001", State: "Down"})
	state := func() string {
		_, reply := restCall(t, s, "GET", "/ari/deviceStates/PJSIP%2F1001", nil)
		return str(reply.(map[string]any)["state"])
	}
	if got := state(); got != "INUSE" {
		t.Fatalf("phone in a call: %s, want INUSE", got)
	}
	s.Hangup(second.ID, 16)
	if got := state(); got != "INUSE" {
		t.Errorf("second call ended while the first goes on: %s, want INUSE", got)
	}
	s.Hangup(talking.ID, 16)
	if got := state(); got != "NOT_INUSE" {
		t.Errorf("both calls ended: %s, want NOT_INUSE", got)
	}
}
