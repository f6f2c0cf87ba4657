package dialer

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

func TestClassifyNamesWhyACustomerLegEnded(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cause, tech int
		want        string
	}{
		{"busy, as recorded (trace 08)", 17, 486, ResultBusy},
		{"rejected reads as busy on the recordings (trace 12)", 17, 486, ResultBusy},
		{"ringing until our timeout (traces 09, 13)", 19, 480, ResultNoAnswer},
		{"no user responding", 18, 0, ResultNoAnswer},
		{"declined", 21, 603, ResultRejected},
		{"decline without Q.850", 0, 603, ResultRejected},
		{"no route (unregistered, trace 05)", 3, 0, ResultUnavailable},
		{"subscriber absent", 20, 0, ResultUnavailable},
		{"SIP not found", 0, 404, ResultUnavailable},
		{"trunk down", 34, 503, ResultUnavailable},
		{"normal clearing before answer", 16, 0, ResultFailed},
		{"nothing known", 0, 0, ResultFailed},
	} {
		if got := Classify(tc.cause, tc.tech); got != tc.want {
			t.Errorf("%s: Classify(%d, %d) = %s, want %s", tc.name, tc.cause, tc.tech, got, tc.want)
		}
	}
}

func TestWhisperSaysWhoWhyAndWhenInTheQueuesTimeZone(t *testing.T) {
	cfg := config.Default()
	hours := config.DefaultQueue().CallingHours
	deadline := time.Date(2026, 11, 23, 13, 5, 0, 0, time.UTC) // 14:05 in Amsterdam
	for _, tc := range []struct {
		name    string
		whisper []string
		job     queue.Job
		want    []string
	}{
		{"default list", cfg.Dialer.Whisper,
			queue.Job{Number: "+31201234501", Reasons: []queue.Reason{"unanswered_transfer"}, Deadline: deadline},
			[]string{"sound:callbackd-callback-for", "digits:31201234501", "sound:callbackd-reason-unanswered-transfer",
				"sound:callbackd-promised-before", "number:14", "number:5"}},
		{"an item without a value is left out, not played wrong",
			[]string{"sound:for", "characters:{name}", "digits:{target}"},
			queue.Job{Number: "+31201234501", Reasons: []queue.Reason{"voicemail"}, Target: "1003"},
			[]string{"sound:for", "digits:1003"}},
		{"names keep only what a media URI may hold",
			[]string{"characters:{name}"},
			queue.Job{Number: "+31201234501", Name: "J. de Vries, <x>"},
			[]string{"characters:J.deVriesx"}},
	} {
		if got := whisperFor(tc.whisper, tc.job, hours); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestControlRoutesEventsToTheCallbackThatOwnsTheChannel(t *testing.T) {
	c := NewControl()
	mine, other := newInbox(), newInbox()
	c.Watch("ast1", "cbd-1-agent", mine)
	c.Watch("ast1", "cbd-1-customer", mine)
	c.Watch("ast1", "cbd-2-agent", other)
	c.Created("cbd-2-agent") // its originate returned: Asterisk has it
	for _, ev := range []*ari.Event{
		{Type: ari.EventStasisStart, Channel: &ari.Channel{ID: "cbd-1-agent"}},
		{Type: ari.EventDial, Peer: &ari.Channel{ID: "cbd-1-customer"}, Caller: &ari.Channel{ID: "cbd-1-agent"}},
		{Type: ari.EventPlaybackFinished, Playback: &ari.Playback{ID: "p", TargetURI: "channel:cbd-1-agent"}},
		{Type: ari.EventChannelDestroyed, Channel: &ari.Channel{ID: "someone-else"}},
	} {
		c.HandleEvent(ev)
	}
	var got []string
	for ev := mine.take(); ev != nil; ev = mine.take() {
		got = append(got, string(ev.Type))
	}
	if want := []string{"StasisStart", "Dial", "PlaybackFinished"}; !slices.Equal(got, want) {
		t.Errorf("callback 1 got %q, want %q (a Dial naming both legs once)", got, want)
	}
	if ev := other.take(); ev != nil {
		t.Errorf("callback 2 got %s about someone else's channel", ev.Type)
	}

	// A resync that no longer lists a watched channel: it ended while the socket was down.
	c.Resync(ari.Snapshot{AsteriskID: "ast1", Channels: []ari.Channel{{ID: "cbd-1-agent", State: "Up"}, {ID: "cbd-1-customer", State: "Ringing"}}})
	if ev := other.take(); ev == nil || ev.Type != EventGone || ev.Channel.ID != "cbd-2-agent" {
		t.Errorf("vanished channel: got %+v, want %s for cbd-2-agent", ev, EventGone)
	}
	// Channels still listed are not gone; their owner learns the state they reached.
	states := map[string]string{}
	for ev := mine.take(); ev != nil; ev = mine.take() {
		if ev.Type != EventSnapshot {
			t.Errorf("channel still listed reported as %s", ev.Type)
			continue
		}
		states[ev.Channel.ID] = ev.Channel.State
	}
	if states["cbd-1-agent"] != "Up" || states["cbd-1-customer"] != "Ringing" {
		t.Errorf("snapshots after the resync: %v, want the agent Up and the customer Ringing", states)
	}
	// A restarted Asterisk lost every channel, whatever its lists say.
	c.Resync(ari.Snapshot{AsteriskID: "ast1", Restarted: true, Channels: []ari.Channel{{ID: "cbd-1-agent"}}})
	if ev := mine.take(); ev == nil || ev.Type != EventGone {
		t.Errorf("after a restart: got %+v, want %s", ev, EventGone)
	}
	// Another Asterisk's resync says nothing about these channels.
	for other.take() != nil {
	}
	c.Forget("cbd-1-agent", "cbd-1-customer")
	c.Resync(ari.Snapshot{AsteriskID: "ast2"})
	if ev := other.take(); ev != nil {
		t.Errorf("ast2's resync reported %s for a channel on ast1", ev.Type)
	}
}

func TestPoolFollowsEndpointAndDeviceStates(t *testing.T) {
	clk := clock.NewFake(monday10)
	woken := 0
	p := NewPool([]Agent{{ID: "bob", Endpoint: "PJSIP/1002", Extension: "1002"}}, clk, nil)
	state := func() string { return p.Agents()[0].State }
	ep := func(s string) *ari.Event {
		return &ari.Event{Type: ari.EventEndpointStateChange, AsteriskID: "ast1",
			Endpoint: &ari.Endpoint{Technology: "PJSIP", Resource: "1002", State: s}}
	}
	dev := func(s string) *ari.Event {
		return &ari.Event{Type: ari.EventDeviceStateChanged, AsteriskID: "ast1", DeviceState: &ari.DeviceState{Name: "PJSIP/1002", State: s}}
	}
	steps := []struct {
		do        func()
		want      string
		wantWoken int
	}{
		{func() {}, AgentOffline, 0},
		{func() { p.HandleEvent(ep("online")) }, AgentFree, 1},
		{func() { p.HandleEvent(dev("INUSE")) }, AgentBusy, 1},
		{func() { p.HandleEvent(dev("RINGING")) }, AgentBusy, 1},
		{func() { p.HandleEvent(dev("NOT_INUSE")) }, AgentFree, 2},
		{func() { _ = p.SetPaused("bob", true) }, AgentPaused, 2},
		{func() { _ = p.SetPaused("bob", false) }, AgentFree, 3},
		{func() { p.startCall("bob") }, AgentCalling, 3},
		{func() { p.endCall("bob", 30*time.Second, 0) }, AgentWrapUp, 3},
		{func() { clk.Advance(30 * time.Second) }, AgentFree, 3},
		{func() { p.startCall("bob"); p.endCall("bob", 0, 2*time.Minute) }, AgentCooldown, 3},
		{func() { clk.Advance(2 * time.Minute) }, AgentFree, 3},
		{func() { p.HandleEvent(dev("UNAVAILABLE")) }, AgentOffline, 3},
		{func() { p.HandleEvent(dev("NOT_INUSE")) }, AgentFree, 4},
		// A PJSIP endpoint may read offline before its first qualify while the registered
		// phone is idle: the device state wins.
		{func() { p.HandleEvent(ep("offline")) }, AgentFree, 4},
		{func() { p.HandleEvent(dev("UNAVAILABLE")) }, AgentOffline, 4},
		{func() { p.HandleEvent(ep("online")) }, AgentOffline, 4},
		{func() { p.HandleEvent(dev("NOT_INUSE")) }, AgentFree, 5},
		{func() { p.Disconnected("ast2") }, AgentFree, 5},
		{func() { p.Disconnected("ast1") }, AgentOffline, 5},
	}
	for i, s := range steps {
		s.do()
		select {
		case <-p.Changed():
			woken++
		default:
		}
		if got := state(); got != s.want || woken != s.wantWoken {
			t.Fatalf("step %d: state %s (woken %d), want %s (woken %d)", i, got, woken, s.want, s.wantWoken)
		}
	}
	if err := p.SetPaused("nobody", true); err == nil {
		t.Error("pausing an unknown agent must fail")
	}
}

func TestOnlyAgentsOnDutyHoldTheirOwnPromises(t *testing.T) {
	clk := clock.NewFake(monday10)
	p := NewPool([]Agent{
		{ID: "free", Endpoint: "PJSIP/1", Extension: "1"},
		{ID: "busy", Endpoint: "PJSIP/2", Extension: "2"},
		{ID: "cooling", Endpoint: "PJSIP/3", Extension: "3"},
		{ID: "paused", Endpoint: "PJSIP/4", Extension: "4"},
		{ID: "offline", Endpoint: "PJSIP/5", Extension: "5"},
	}, clk, nil)
	for _, n := range []string{"1", "2", "3", "4"} {
		p.HandleEvent(&ari.Event{Type: ari.EventEndpointStateChange, AsteriskID: "a",
			Endpoint: &ari.Endpoint{Technology: "PJSIP", Resource: n, State: "online"}})
	}
	p.HandleEvent(&ari.Event{Type: ari.EventDeviceStateChanged, AsteriskID: "a", DeviceState: &ari.DeviceState{Name: "PJSIP/2", State: "INUSE"}})
	p.startCall("cooling")
	p.endCall("cooling", 0, time.Minute)
	_ = p.SetPaused("paused", true)
	if got, want := p.Available(), []string{"1", "2"}; !slices.Equal(got, want) {
		t.Errorf("Available() = %q, want %q: a busy agent holds, one cooling down after not answering does not", got, want)
	}
}

func TestTheForecastCountsWhoTheScheduleReachesTooLate(t *testing.T) {
	now := monday10
	due := func(deadline time.Duration) queue.Due { return queue.Due{Deadline: now.Add(deadline)} }
	held := func(notBefore, deadline time.Duration) queue.Due {
		return queue.Due{NotBefore: now.Add(notBefore), Deadline: now.Add(deadline)}
	}
	for _, tc := range []struct {
		name   string
		list   []queue.Due
		agents int
		want   int
	}{
		{"nothing pending", nil, 2, 0},
		{"nobody on duty: every pending promise is at risk", []queue.Due{due(time.Hour), due(2 * time.Hour)}, 0, 2},
		{"one agent, room for all", []queue.Due{due(10 * time.Minute), due(20 * time.Minute), due(30 * time.Minute)}, 1, 0},
		{"one agent, the third starts after its deadline",
			[]queue.Due{due(2 * time.Minute), due(6 * time.Minute), due(9 * time.Minute)}, 1, 1},
		{"two agents share the load", []queue.Due{due(2 * time.Minute), due(6 * time.Minute), due(9 * time.Minute)}, 2, 0},
		{"already overdue", []queue.Due{due(-time.Minute)}, 3, 1},
		{"a held promise waits for its not-before", []queue.Due{held(30*time.Minute, 20*time.Minute)}, 1, 1},
		{"a late promise still takes the agent's time", []queue.Due{due(-time.Minute), due(6 * time.Minute)}, 1, 1},
		{"a late promise still takes the agent's time, pushing the next past its deadline",
			[]queue.Due{due(-time.Minute), due(4 * time.Minute)}, 1, 2},
	} {
		// Each callback takes 5 minutes: 0–5, 5–10, 10–15 for one agent.
		in := ForecastInput{Now: now, Handle: 5 * time.Minute}
		for i := range tc.agents {
			in.Agents = append(in.Agents, ForecastAgent{ID: fmt.Sprint(i)})
		}
		for i, d := range tc.list {
			in.Promises = append(in.Promises, ForecastPromise{ID: fmt.Sprint(i), Deadline: d.Deadline, NotBefore: d.NotBefore})
		}
		if got := CountAtRisk(Forecast(in)); got != tc.want {
			t.Errorf("%s: at risk = %d, want %d", tc.name, got, tc.want)
		}
	}
}
