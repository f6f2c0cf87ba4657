package aritest

import (
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
)

// These tests hold the fake to what Asterisk 22 does with a Stasis application whose socket
// goes away or is taken over, as read in its source (stasis_apps.go names the functions).

// eventsOf returns the types of the events at and after index from of what es received.
func eventsOf(es *eventSocket, from int) []string {
	var out []string
	for i, ev := range es.snapshot() {
		if i >= from {
			out = append(out, string(evType(ev)))
		}
	}
	return out
}

// aboutChannel returns the types of the events at and after index from that carry channel id.
func aboutChannel(es *eventSocket, from int, id string) []string {
	var out []string
	for i, ev := range es.snapshot() {
		if ch := obj(ev, "channel"); i >= from && ch != nil && ch["id"] == id {
			out = append(out, string(evType(ev)))
		}
	}
	return out
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// answeredInApp originates a leg to endpoint into app and waits until it is Up in Stasis.
func answeredInApp(t *testing.T, s *Server, app, endpoint, id string) {
	t.Helper()
	if status, reply := restCall(t, s, "POST", "/ari/channels?app="+app+"&endpoint="+endpoint+"&channelId="+id, nil); status != 200 {
		t.Fatalf("originate %s: %d %v", id, status, reply)
	}
	waitFor(t, id+" to answer into "+app, func() bool { return stateOf(s, id) == "Up" })
}

// agentInApp starts a fake with a socket for app (query) and an agent leg answered into app,
// every event of it delivered.
func agentInApp(t *testing.T, query, app string) (*Server, *eventSocket) {
	t.Helper()
	s, _ := newFake(t)
	s.SetEndpoint("PJSIP/1001", Answers(time.Second))
	es := dialEvents(t, s, query)
	answeredInApp(t, s, app, "PJSIP%2F1001", "agent")
	waitDelivered(t, s, es, app)
	return s, es
}

// A socket that goes away leaves its app's channels in Stasis and its bridges up; the next
// socket for the app gets their events again — with no new StasisStart — and so learns of
// their end.
func TestChannelsAndBridgesStayInAnAppWhoseSocketWentAway(t *testing.T) {
	s, es := agentInApp(t, "app=cbctl", "cbctl")
	if status, reply := restCall(t, s, "POST", "/ari/bridges?type=mixing&bridgeId=talk", nil); status != 200 {
		t.Fatalf("create bridge: %d %v", status, reply)
	}
	if status, reply := restCall(t, s, "POST", "/ari/bridges/talk/addChannel?channel=agent", nil); status != 204 {
		t.Fatalf("add channel: %d %v", status, reply)
	}
	waitDelivered(t, s, es, "cbctl")

	s.DropWebSockets()

	var inStasis bool
	for _, ch := range s.Channels() {
		inStasis = inStasis || (ch.ID == "agent" && ch.Dialplan.AppName == "Stasis" && ch.Dialplan.AppData == "cbctl")
	}
	if !inStasis {
		t.Fatalf("after the drop the channel is not listed in Stasis(cbctl): %+v", s.Channels())
	}
	bridges := s.Bridges()
	if len(bridges) != 1 || bridges[0].ID != "talk" || len(bridges[0].Channels) != 1 {
		t.Fatalf("after the drop the bridges are %+v; want bridge talk, still holding the channel", bridges)
	}

	from := len(es.snapshot())
	es.open()
	s.Hangup("agent", 16)
	waitFor(t, "the new socket to hear of the channel's end", func() bool {
		return contains(eventsOf(es, from), string(ari.EventChannelDestroyed))
	}, func() string { return "got " + joinTypes(eventsOf(es, from)) })
	got := eventsOf(es, from)
	for _, want := range []ari.EventType{ari.EventChannelHangupRequest, ari.EventChannelLeftBridge, ari.EventStasisEnd} {
		if !contains(got, string(want)) {
			t.Errorf("the reconnected app got %s; want %s among them", joinTypes(got), want)
		}
	}
	if contains(got, string(ari.EventStasisStart)) {
		t.Errorf("the reconnected app got %s; a channel already in the app gets no new StasisStart", joinTypes(got))
	}
	if bridges := s.Bridges(); len(bridges) != 1 || len(bridges[0].Channels) != 0 {
		t.Errorf("bridges after the hang-up: %+v; want bridge talk, empty (a Stasis bridge stays until destroyed)", bridges)
	}
}

// What happens to a channel of an app while no socket holds it is not queued: the next socket
// gets no StasisEnd for a channel that ended in the gap.
func TestAnAppWithoutASocketMissesTheEndOfItsChannels(t *testing.T) {
	s, es := agentInApp(t, "app=cbctl", "cbctl")

	s.DropWebSockets()
	s.Hangup("agent", 16)
	from := len(es.snapshot())
	es.open()
	answeredInApp(t, s, "cbctl", "PJSIP%2F1001", "agent2")
	waitFor(t, "the new socket to get the new channel's StasisStart", func() bool {
		return contains(eventsOf(es, from), string(ari.EventStasisStart))
	})
	if got := aboutChannel(es, from, "agent"); len(got) > 0 {
		t.Errorf("the new socket got %s for a channel that ended while no socket was connected", joinTypes(got))
	}
}

// A second socket for an app a socket holds takes it over: the first gets ApplicationReplaced
// naming the app, then nothing more for it, and is not closed.
func TestASecondSocketForAnAppReplacesTheFirst(t *testing.T) {
	s, _ := newFake(t)
	s.SetEndpoint("PJSIP/1001", Answers(time.Second))
	first := dialEvents(t, s, "app=cbctl")
	second := dialEvents(t, s, "app=cbctl")

	waitFor(t, "ApplicationReplaced on the first socket", func() bool { return len(first.snapshot()) > 0 })
	replaced := first.snapshot()[0]
	if evType(replaced) != ari.EventApplicationReplaced || replaced["application"] != "cbctl" ||
		replaced["asterisk_id"] == nil || replaced["timestamp"] == nil {
		t.Fatalf("the first socket got %v; want ApplicationReplaced for cbctl with timestamp and asterisk_id", replaced)
	}
	if len(second.snapshot()) != 0 {
		t.Errorf("the new socket got %v; Asterisk tells only the replaced one", second.snapshot())
	}

	answeredInApp(t, s, "cbctl", "PJSIP%2F1001", "agent")
	waitFor(t, "the StasisStart on the second socket", func() bool { return contains(eventsOf(second, 0), string(ari.EventStasisStart)) })
	if got := eventsOf(first, 1); len(got) != 0 {
		t.Errorf("the replaced socket got %s after ApplicationReplaced; want nothing", joinTypes(got))
	}
	select {
	case <-first.closed:
		t.Error("the replaced socket was closed; Asterisk only stops sending it the app's events")
	default:
	}
}

// A subscribeAll app that reconnects while it still has a channel in Stasis is the same app,
// reactivated without its subscribe-all forwards: it sees its own channel again but no new
// inbound call until it has finished once (app_update does not resubscribe; app_create does).
func TestASubscribeAllAppReactivatedWithItsChannelsIsNotSubscribedToAll(t *testing.T) {
	s, es := agentInApp(t, "app=mon&subscribeAll=true", "mon")

	s.DropWebSockets()
	from := len(es.snapshot())
	es.open()
	s.CreateChannel(ChannelSpec{Endpoint: "PJSIP/trunk", ID: "inbound", CallerNumber: "+31201234501"})
	s.Hangup("agent", 16)
	waitFor(t, "the end of the app's own channel", func() bool {
		return contains(eventsOf(es, from), string(ari.EventStasisEnd))
	})
	if got := aboutChannel(es, from, "inbound"); len(got) > 0 {
		t.Errorf("the reactivated app got %s of an inbound call; it is no longer subscribed to all", joinTypes(got))
	}

	// Once the app holds nothing, a new socket creates it afresh, subscribed to all.
	s.DropWebSockets()
	es.open()
	s.Hangup("inbound", 16)
	waitFor(t, "the fresh app to see the inbound call end", func() bool {
		return contains(aboutChannel(es, 0, "inbound"), string(ari.EventChannelDestroyed))
	})
}

func joinTypes(types []string) string {
	out := "["
	for i, t := range types {
		if i > 0 {
			out += " "
		}
		out += t
	}
	return out + "]"
}

// Daemons side by side on one Asterisk each register a monitor app with subscribeAll and a
// control app of their own (issue 11). Every subscribeAll app is its own subscriber to every
// channel (app_create subscribes each to the all-channels topic, res/stasis/app.c), so each
// monitor sees a channel that sits in another daemon's control app — its state, its bridge,
// its end — also once that daemon's socket is gone; StasisStart and StasisEnd go to the
// owning app only (res_stasis.c sends them to the app, not to the channel's topic).
func TestEveryMonitorAppSeesAChannelInAnotherAppsStasisToItsEnd(t *testing.T) {
	s, _ := newFake(t)
	s.SetEndpoint("PJSIP/1001", Answers(time.Second))
	monA := dialEvents(t, s, "app=mon-a&subscribeAll=true")
	monB := dialEvents(t, s, "app=mon-b&subscribeAll=true")
	ctlA := dialEvents(t, s, "app=ctl-a")
	answeredInApp(t, s, "ctl-a", "PJSIP%2F1001", "agent")
	waitDelivered(t, s, ctlA, "ctl-a")
	for name, mon := range map[string]*eventSocket{"mon-a": monA, "mon-b": monB} {
		waitDelivered(t, s, mon, name)
		got := aboutChannel(mon, 0, "agent")
		if !contains(got, string(ari.EventChannelStateChange)) {
			t.Errorf("%s got %s of a channel answered into ctl-a; want its state changes", name, joinTypes(got))
		}
		if contains(got, string(ari.EventStasisStart)) {
			t.Errorf("%s got %s; StasisStart goes to the owning app only", name, joinTypes(got))
		}
	}
	if got := aboutChannel(ctlA, 0, "agent"); !contains(got, string(ari.EventStasisStart)) {
		t.Errorf("ctl-a got %s; want the StasisStart of its channel", joinTypes(got))
	}

	// The daemon holding ctl-a vanishes; the other daemon's sockets stay.
	s.DropApps("ctl-a")
	if s.Connected("ctl-a") || !s.Connected("mon-a") || !s.Connected("mon-b") {
		t.Fatalf("after dropping ctl-a's socket: ctl-a %v, mon-a %v, mon-b %v; want only ctl-a gone",
			s.Connected("ctl-a"), s.Connected("mon-a"), s.Connected("mon-b"))
	}
	var listed bool
	for _, ch := range s.Channels() {
		listed = listed || ch.ID == "agent" && ch.Dialplan.AppName == "Stasis" && ch.Dialplan.AppData == "ctl-a"
	}
	if !listed {
		t.Fatalf("the channel is not listed in Stasis(ctl-a) after its app's socket went: %+v", s.Channels())
	}
	from := len(monB.snapshot())
	s.Hangup("agent", 16)
	waitFor(t, "mon-b to hear of the channel's end", func() bool {
		return contains(aboutChannel(monB, from, "agent"), string(ari.EventChannelDestroyed))
	})
	if got := aboutChannel(monB, from, "agent"); contains(got, string(ari.EventStasisEnd)) {
		t.Errorf("mon-b got %s; StasisEnd goes to the owning app only", joinTypes(got))
	}
}
