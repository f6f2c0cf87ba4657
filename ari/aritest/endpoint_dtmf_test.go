package aritest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
)

// A phone registering and going away is told to exactly the apps that asked (notes §1, §6):
// EndpointStateChange only to an endpoint:TECH/RES subscriber, DeviceStateChanged to the
// subscribeAll monitor and to a deviceState: subscriber; an app with no subscription hears
// nothing, and neither does anyone when a registered phone merely changes how it behaves.
func TestEndpointRegistrationReachesOnlyItsSubscribers(t *testing.T) {
	s, _ := newFake(t)
	mon := dialEvents(t, s, "app=cbmon&subscribeAll=true")
	apps := dialEvents(t, s, "app=cbctl,cbdev,cbnone")
	subscribe(t, s, "cbctl", "endpoint:PJSIP/1001")
	subscribe(t, s, "cbdev", "deviceState:PJSIP/1001")

	steps := []struct {
		name     string
		endpoint string
		behavior Behavior
		want     map[string][]string // app → the events this step adds
	}{
		{"first registration", "PJSIP/1001", Answers(time.Second), map[string][]string{
			"cbctl": {"EndpointStateChange PJSIP/1001 online"},
			"cbmon": {"DeviceStateChanged PJSIP/1001 NOT_INUSE"},
			"cbdev": {"DeviceStateChanged PJSIP/1001 NOT_INUSE"},
		}},
		{"a registered phone now rejects calls: still registered", "PJSIP/1001", Busy(time.Second), nil},
		{"goes away", "PJSIP/1001", Unavailable(), map[string][]string{
			"cbctl": {"EndpointStateChange PJSIP/1001 offline"},
			"cbmon": {"DeviceStateChanged PJSIP/1001 UNAVAILABLE"},
			"cbdev": {"DeviceStateChanged PJSIP/1001 UNAVAILABLE"},
		}},
		{"still away", "PJSIP/1001", Unavailable(), nil},
		{"comes back", "PJSIP/1001", Answers(time.Second), map[string][]string{
			"cbctl": {"EndpointStateChange PJSIP/1001 online"},
			"cbmon": {"DeviceStateChanged PJSIP/1001 NOT_INUSE"},
			"cbdev": {"DeviceStateChanged PJSIP/1001 NOT_INUSE"},
		}},
		{"another phone, known only to the monitor", "PJSIP/1002", Unavailable(), map[string][]string{
			"cbmon": {"DeviceStateChanged PJSIP/1002 UNAVAILABLE"},
		}},
	}
	seen := map[string]int{}
	for _, st := range steps {
		s.SetEndpoint(st.endpoint, st.behavior)
		for _, app := range []string{"cbmon", "cbctl", "cbdev", "cbnone"} {
			es := apps
			if app == "cbmon" {
				es = mon
			}
			waitDelivered(t, s, es, app)
			all := stateEvents(es.byApp(app))
			got := all[seen[app]:]
			seen[app] = len(all)
			if strings.Join(got, "\n") != strings.Join(st.want[app], "\n") {
				t.Errorf("%s: %s got %q; want %q", st.name, app, got, st.want[app])
			}
		}
	}
}

// stateEvents lists the endpoint and device state events among evs, as short keys.
func stateEvents(evs []map[string]any) []string {
	var out []string
	for _, ev := range evs {
		switch typ := evType(ev); typ {
		case ari.EventEndpointStateChange:
			ep := obj(ev, "endpoint")
			out = append(out, fmt.Sprintf("%s %s/%s %s", typ, ep["technology"], ep["resource"], ep["state"]))
		case ari.EventDeviceStateChanged:
			ds := obj(ev, "device_state")
			out = append(out, fmt.Sprintf("%s %s %s", typ, ds["name"], ds["state"]))
		}
	}
	return out
}

// An EndpointStateChange has the shape of Asterisk's: the envelope and an endpoint object
// with technology, resource, state and the ids of the endpoint's channels, and it decodes
// into ari.Event.Endpoint.
func TestEndpointStateChangeShape(t *testing.T) {
	s, _ := newFake(t)
	es := dialEvents(t, s, "app=cbctl")
	subscribe(t, s, "cbctl", "endpoint:PJSIP/1001")
	s.SetEndpoint("PJSIP/1001", Unavailable())
	waitFor(t, "the EndpointStateChange", func() bool { return len(es.byApp("cbctl")) > 0 })
	raw := es.byApp("cbctl")[0]
	if got, want := strings.Join(jsonKeys(raw), ","), "application,asterisk_id,endpoint,timestamp,type"; got != want {
		t.Errorf("event keys %s; want %s", got, want)
	}
	if got, want := strings.Join(jsonKeys(raw["endpoint"]), ","), "channel_ids,resource,state,technology"; got != want {
		t.Errorf("endpoint keys %s; want %s", got, want)
	}
	data, err := json.Marshal(raw)
	if err != nil {
		t.Fatalf("re-encoding the event: %v", err)
	}
	ev, err := ari.Decode(data)
	if err != nil {
		t.Fatalf("decoding the event: %v", err)
	}
	want := ari.Endpoint{Technology: "PJSIP", Resource: "1001", State: "offline", ChannelIDs: []string{}}
	if ev.Type != ari.EventEndpointStateChange || ev.Endpoint == nil || fmt.Sprint(*ev.Endpoint) != fmt.Sprint(want) {
		t.Errorf("decoded %s endpoint %+v; want EndpointStateChange %+v", ev.Type, ev.Endpoint, want)
	}
}

// An endpoint: subscription also brings the events of that endpoint's channels (notes §1),
// and of no other endpoint's.
func TestEndpointSubscriptionForwardsItsChannels(t *testing.T) {
	s, _ := newFake(t)
	es := dialEvents(t, s, "app=cbctl")
	subscribe(t, s, "cbctl", "endpoint:PJSIP/1001")
	mine := s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/1001", CallerNumber: "1001"})
	other := s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/1002", CallerNumber: "1002"})
	s.Hangup(other.ID, 16)
	s.Hangup(mine.ID, 16)
	waitDelivered(t, s, es, "cbctl")
	var got []string
	for _, ev := range es.byApp("cbctl") {
		got = append(got, fmt.Sprintf("%s %s", ev["type"], str(obj(ev, "channel")["id"])))
	}
	want := []string{
		"ChannelCreated " + mine.ID,
		"ChannelHangupRequest " + mine.ID,
		"ChannelDestroyed " + mine.ID,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("cbctl got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// A scripted phone that answers an ARI-dialled leg keys its digits afterwards: never before
// the answer, DigitsAfter after it, then 300 ms apart, each a ChannelDtmfReceived of 100 ms
// to the control app. A phone that hangs up first keys nothing.
func TestScriptedPhonePressesDigitsAfterAnswering(t *testing.T) {
	cases := []struct {
		name     string
		how      string // "originate" or "create+dial"
		behavior Behavior
		want     []string // a created leg is in Stasis before it rings, an originated one once answered
	}{
		{"agent accepts an originated call with 1", "originate",
			Behavior{Answer: true, AnswerAfter: 2 * time.Second, Digits: "1", DigitsAfter: 3 * time.Second},
			[]string{"ChannelStateChange Up", `Dial "ANSWER"`, "StasisStart", "DTMF 1 100ms"}},
		{"customer keys a code on a dialled leg", "create+dial", AnswersAndPresses(time.Second, "12#"),
			[]string{"StasisStart", "ChannelStateChange Up", `Dial "ANSWER"`, "DTMF 1 100ms", "DTMF 2 100ms", "DTMF # 100ms"}},
		{"keys at once when DigitsAfter is zero", "create+dial",
			Behavior{Answer: true, AnswerAfter: time.Second, Digits: "9"},
			[]string{"StasisStart", "ChannelStateChange Up", `Dial "ANSWER"`, "DTMF 9 100ms"}},
		{"hangs up before keying anything", "create+dial",
			Behavior{Answer: true, AnswerAfter: time.Second, Digits: "1", DigitsAfter: 5 * time.Second, HangupAfter: 2 * time.Second},
			[]string{"StasisStart", "ChannelStateChange Up", `Dial "ANSWER"`, "ChannelHangupRequest", "ChannelDestroyed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newFake(t)
			s.SetEndpoint("PJSIP/2001", tc.behavior)
			ctl := dialEvents(t, s, "app=cbctl")
			id := dialLeg(t, s, tc.how, "PJSIP/2001")
			wantDigits := strings.Count(strings.Join(tc.want, " "), "DTMF")
			waitFor(t, "the digits or the end of the leg", func() bool {
				got := dtmfEvents(ctl, id)
				return strings.Count(strings.Join(got, " "), "DTMF") == wantDigits &&
					(wantDigits > 0 || strings.Contains(strings.Join(got, " "), string(ari.EventChannelDestroyed)))
			})
			got := dtmfEvents(ctl, id)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("events of the leg:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			checkDigitTiming(t, ctl, id, tc.behavior.DigitsAfter)
		})
	}
}

// dialLeg rings endpoint for app cbctl either by originate or by create and /dial, and returns
// the channel id.
func dialLeg(t *testing.T, s *Server, how, endpoint string) string {
	t.Helper()
	ep := url.QueryEscape(endpoint)
	switch how {
	case "originate":
		status, reply := restCall(t, s, "POST", "/ari/channels?app=cbctl&endpoint="+ep, nil)
		if status != 200 {
			t.Fatalf("originate: %d %v", status, reply)
		}
		return str(reply.(map[string]any)["id"])
	case "create+dial":
		status, reply := restCall(t, s, "POST", "/ari/channels/create?app=cbctl&endpoint="+ep, nil)
		if status != 200 {
			t.Fatalf("create: %d %v", status, reply)
		}
		id := str(reply.(map[string]any)["id"])
		if status, reply := restCall(t, s, "POST", "/ari/channels/"+id+"/dial?timeout=30", nil); status != 204 {
			t.Fatalf("dial: %d %v", status, reply)
		}
		return id
	}
	t.Fatalf("unknown way to dial %q", how)
	return ""
}

// dtmfEvents lists the events of one channel that tell Stasis, answer, DTMF and hang-up, as
// short keys.
func dtmfEvents(es *eventSocket, id string) []string {
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
		case ari.EventChannelStateChange:
			if ch["state"] == "Up" {
				out = append(out, string(typ)+" Up")
			}
		case ari.EventDial:
			if ev["dialstatus"] == "ANSWER" {
				out = append(out, `Dial "ANSWER"`)
			}
		case ari.EventStasisStart, ari.EventChannelHangupRequest, ari.EventChannelDestroyed:
			out = append(out, string(typ))
		case ari.EventChannelDtmfReceived:
			out = append(out, fmt.Sprintf("DTMF %s %sms", ev["digit"], str(ev["duration_ms"])))
		}
	}
	return out
}

// checkDigitTiming checks, on the fake clock's timestamps, that the first digit comes no
// sooner than after the answer and the next ones no sooner than 300 ms after the one before.
func checkDigitTiming(t *testing.T, es *eventSocket, id string, after time.Duration) {
	t.Helper()
	var answered, prev time.Time
	for _, ev := range es.snapshot() {
		if str(obj(ev, "channel")["id"]) != id {
			continue
		}
		at, err := time.Parse(ari.TimeLayout, str(ev["timestamp"]))
		if err != nil {
			t.Fatalf("timestamp %v: %v", ev["timestamp"], err)
		}
		switch {
		case evType(ev) == ari.EventChannelStateChange && obj(ev, "channel")["state"] == "Up":
			answered = at
		case evType(ev) == ari.EventChannelDtmfReceived && prev.IsZero():
			if at.Before(answered.Add(after)) {
				t.Errorf("first digit at %s, sooner than %s after the answer at %s", at, after, answered)
			}
			prev = at
		case evType(ev) == ari.EventChannelDtmfReceived:
			if at.Before(prev.Add(digitGap)) {
				t.Errorf("digit at %s, sooner than %s after the one at %s", at, digitGap, prev)
			}
			prev = at
		}
	}
}

// SendDTMF keys digits on any channel at once: one ChannelDtmfReceived per digit, in order,
// to every app that gets the channel's events and to no other; an unknown channel is ignored.
func TestSendDTMF(t *testing.T) {
	s, _ := newFake(t)
	mon := dialEvents(t, s, "app=cbmon&subscribeAll=true")
	apps := dialEvents(t, s, "app=cbctl,cbnone")
	ch := s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/trunk", CallerNumber: "+31201234501"})
	subscribe(t, s, "cbctl", "channel:"+ch.ID)
	s.SendDTMF(ch.ID, "4*")
	s.SendDTMF("no-such-channel", "5")
	want := map[string][]string{
		"cbmon":  {"ChannelDtmfReceived 4 100 " + ch.ID, "ChannelDtmfReceived * 100 " + ch.ID},
		"cbctl":  {"ChannelDtmfReceived 4 100 " + ch.ID, "ChannelDtmfReceived * 100 " + ch.ID},
		"cbnone": nil,
	}
	for app, w := range want {
		es := apps
		if app == "cbmon" {
			es = mon
		}
		waitDelivered(t, s, es, app)
		var got []string
		for _, ev := range es.byApp(app) {
			if evType(ev) == ari.EventChannelDtmfReceived {
				got = append(got, fmt.Sprintf("%s %s %s %s", ev["type"], ev["digit"], str(ev["duration_ms"]), str(obj(ev, "channel")["id"])))
			}
		}
		if strings.Join(got, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s got %q; want %q", app, got, w)
		}
	}
}

// subscribe adds an event source to app over REST, as the connection manager does.
func subscribe(t *testing.T, s *Server, app, source string) {
	t.Helper()
	status, reply := restCall(t, s, "POST", "/ari/applications/"+app+"/subscription?eventSource="+url.QueryEscape(source), nil)
	if status != 200 {
		t.Fatalf("subscribing %s to %s: %d %v", app, source, status, reply)
	}
}
