package aritest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
)

// The phones of the recordings (traces/README.md "How the calls were made").
func recordedPhones(s *Server) {
	s.SetEndpoint("PJSIP/1001", Answers(500*time.Millisecond))
	s.SetEndpoint("PJSIP/1002", Answers(500*time.Millisecond))
	s.SetEndpoint("PJSIP/1003", Rings())
	s.SetEndpoint("PJSIP/1004", Unavailable())
	s.SetEndpoint("PJSIP/2001", Answers(2*time.Second))
	s.SetEndpoint("PJSIP/trunk", Behavior{Answer: true})
	s.SetEndpoint("Local/busy-hangup@test", Busy(0))
	s.SetEndpoint("Local/noanswer@test", Rings())
}

func mainNumber(from string, rest ...Step) []Step {
	return append([]Step{
		NoOp("trunk: " + from + " calls the main number"),
		Set("__TRANSFER_CONTEXT", "cb-internal"),
		Dial("PJSIP/1001", 20*time.Second, "t"),
	}, rest...)
}

func TestInboundScenariosMatchRecordings(t *testing.T) {
	cases := []struct {
		file string
		call InboundCall
	}{
		{"01-dial-noanswer.jsonl", InboundCall{From: "+31201234501", To: "+31205550101", Steps: []Step{
			NoOp("trunk: +31201234501 calls 1003 direct, no voicemail"),
			Dial("PJSIP/1003", 10*time.Second, ""),
			Playback("vm-nobodyavail"),
			App("Wait", "20"),
			CallerHangsUp(3 * time.Second),
		}}},
		{"02-dial-noanswer-voicemail.jsonl", InboundCall{From: "+31201234502", Name: "J. de Vries", To: "+31205550102", Steps: []Step{
			NoOp("trunk: +31201234502 calls 1003 direct, voicemail on no answer"),
			Dial("PJSIP/1003", 10*time.Second, ""),
			VoiceMail("1003@default", 3*time.Second),
		}}},
		{"03-voicemail-hangup-in-greeting.jsonl", InboundCall{From: "+31201234503", To: "+31205550103", Steps: []Step{
			NoOp("trunk: +31201234503 straight to voicemail 1003"),
			VoiceMailHangupInGreeting("1003@default", 2*time.Second),
		}}},
		{"04-blind-transfer-noanswer-voicemail.jsonl", InboundCall{From: "+31201234504", Name: "Bakker Installatie", To: "+31205550100",
			Steps: mainNumber("+31201234504",
				BlindTransfer(3*time.Second, "1003", "cb-internal"),
				Dial("PJSIP/1003", 10*time.Second, ""),
				App("GotoIf", "0?gone"),
				VoiceMail("1003@default", 4*time.Second),
			)}},
		{"05-blind-transfer-unavailable.jsonl", InboundCall{From: "+31201234505", To: "+31205550100",
			Steps: mainNumber("+31201234505",
				BlindTransfer(3*time.Second, "1004", "cb-internal"),
				Dial("PJSIP/1004", 10*time.Second, ""),
				App("GotoIf", "1?gone"),
				Hangup(),
			)}},
		{"06-answered.jsonl", InboundCall{From: "+31201234506", To: "+31205550100",
			Steps: mainNumber("+31201234506", Talk(5*time.Second))}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			s, _ := newFake(t)
			recordedPhones(s)
			mon := dialEvents(t, s, "app=cbmon&subscribeAll=true")
			ctl := dialEvents(t, s, "app=cbctl")
			call := s.Inbound(tc.call)
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			if err := call.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			waitDelivered(t, s, mon, "cbmon")
			rec := loadTrace(t, tc.file)
			compareSequences(t, "cbmon", normalise(recordedEvents(rec, "cbmon")), normalise(mon.byApp("cbmon")))
			if got := ctl.byApp("cbctl"); len(got) != 0 || len(recordedEvents(rec, "cbctl")) != 0 {
				t.Errorf("control app got %d events for an inbound call (recorded: %d)", len(got), len(recordedEvents(rec, "cbctl")))
			}
			if n := len(s.Channels()); n != 0 {
				t.Errorf("%d channels left after the call ended", n)
			}
		})
	}
}

// TestCallbackFlowsMatchRecordings replays the recorded REST requests of the daemon's callback
// flows against the fake, with the phones scripted as in the recording, and compares the
// events of both apps and the REST replies with the recording.
func TestCallbackFlowsMatchRecordings(t *testing.T) {
	cases := []struct {
		file  string
		phone func(*Server)
	}{
		{"07-callback-customer-answers.jsonl", nil},
		{"08-callback-customer-busy.jsonl", nil},
		{"09-callback-customer-noanswer.jsonl", nil},
		{"10-callback-agent-unavailable.jsonl", nil},
		{"11-control-socket-drop.jsonl", nil},
		{"12-callback-customer-rejects.jsonl", func(s *Server) { s.SetEndpoint("PJSIP/2001", Busy(2*time.Second)) }},
		{"13-callback-customer-rings-noanswer.jsonl", func(s *Server) { s.SetEndpoint("PJSIP/2001", Rings()) }},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			s, _ := newFake(t)
			recordedPhones(s)
			if tc.phone != nil {
				tc.phone(s)
			}
			mon := dialEvents(t, s, "app=cbmon&subscribeAll=true")
			ctl := dialEvents(t, s, "app=cbctl")
			rec := loadTrace(t, tc.file)
			replayREST(t, s, rec, mon, ctl)
			// Let the last scripted events happen, then compare.
			wantCtl := normalise(recordedEvents(rec, "cbctl"))
			waitFor(t, "the control app's events", func() bool {
				return countKeys(normalise(ctl.byApp("cbctl"))) >= countKeys(wantCtl)
			})
			waitFor(t, "every channel to go", func() bool { return len(s.Channels()) == 0 })
			waitDelivered(t, s, mon, "cbmon")
			waitDelivered(t, s, ctl, "cbctl")
			compareSequences(t, "cbctl", wantCtl, normalise(ctl.byApp("cbctl")))
			compareSequences(t, "cbmon", normalise(recordedEvents(rec, "cbmon")), normalise(mon.byApp("cbmon")))
			for _, ev := range ctl.byApp("cbctl") {
				if evType(ev) == ari.EventChannelCreated {
					t.Errorf("control app got ChannelCreated for its own channel %v", obj(ev, "channel")["name"])
				}
			}
		})
	}
}

// shortfall describes what covers found missing, for the failure message.
func shortfall(got, want map[string][]string) string {
	var parts []string
	for group, w := range want {
		if len(got[group]) < len(w) {
			parts = append(parts, fmt.Sprintf("%s has %d of %d (%v)", group, len(got[group]), len(w), w[len(got[group]):]))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// awaitRecorded waits until both sockets have received, per channel and playback, the
// significant events the recording had received before cutoff. The recorder reacted to
// whichever app's copy came first (trace 08 hangs up the agent on the monitor's
// PlaybackFinished), so both apps' events count.
func awaitRecorded(t *testing.T, rec []traceLine, cutoff time.Time, before string, mon, ctl *eventSocket) {
	t.Helper()
	seen := map[string][]map[string]any{}
	for _, e := range rec {
		if e.Kind == "event" && e.At.Before(cutoff) {
			seen[e.App] = append(seen[e.App], e.Event)
		}
	}
	wantCtl, wantMon := normalise(seen["cbctl"]), normalise(seen["cbmon"])
	waitFor(t, fmt.Sprintf("%d control and %d monitor events before %s", countKeys(wantCtl), countKeys(wantMon), before), func() bool {
		return covers(normalise(ctl.byApp("cbctl")), wantCtl) && covers(normalise(mon.byApp("cbmon")), wantMon)
	}, func() string {
		return "control: " + shortfall(normalise(ctl.byApp("cbctl")), wantCtl) + "; monitor: " + shortfall(normalise(mon.byApp("cbmon")), wantMon)
	})
}

func hasLater(rec []traceLine, app, state string) bool {
	for _, l := range rec {
		if l.Kind == "ws" && l.App == app && l.State == state {
			return true
		}
	}
	return false
}

// covers reports whether got has, for every channel or playback, at least as many
// significant events as want: counting per group keeps one leg's extra events from standing in
// for another leg's missing ones.
func covers(got, want map[string][]string) bool {
	for group, w := range want {
		if len(got[group]) < len(w) {
			return false
		}
	}
	return true
}

func countKeys(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// replayREST sends the recording's REST requests in order. Before each, it waits until the
// control app has seen as many significant events as it had in the recording at that point
// (the recorder reacted to events: StasisStart, PlaybackFinished, ChannelDestroyed...).
// Recorded channel ids are mapped to the fake's ids through the originate/create replies.
func replayREST(t *testing.T, s *Server, rec []traceLine, mon, ctl *eventSocket) {
	t.Helper()
	ids := map[string]string{}
	for i, l := range rec {
		if l.Kind == "ws" && l.App == "cbctl" && i+1 < len(rec) {
			// Trace 11: the control socket goes away mid-call and comes back; events for the
			// app in between are lost, as on a real Asterisk.
			switch l.State {
			case "closed":
				if hasLater(rec[i+1:], "cbctl", "connected") {
					awaitRecorded(t, rec[:i], l.At, "closing the control socket", mon, ctl)
					ctl.close()
					waitFor(t, "the fake to see the control socket go", func() bool { return !s.Connected("cbctl") })
				}
			case "connected":
				if !s.Connected("cbctl") {
					awaitRecorded(t, rec[:i], l.At, "reopening the control socket", mon, ctl)
					ctl.open()
					waitFor(t, "the fake to see the control socket back", func() bool { return s.Connected("cbctl") })
				}
			}
			continue
		}
		if l.Kind != "rest" {
			continue
		}
		// The recorder logs a REST line when the reply arrives, so events the request itself
		// caused (PlaybackStarted of a play) can come before it in the file. Only events
		// received before the request was sent are its preconditions.
		awaitRecorded(t, rec[:i], l.SentAt, fmt.Sprintf("%s %s", l.Method, l.Path), mon, ctl)
		path := l.Path
		for rid, fid := range ids {
			path = strings.ReplaceAll(path, url.PathEscape(rid), url.PathEscape(fid))
			path = strings.ReplaceAll(path, url.QueryEscape(rid), url.QueryEscape(fid))
		}
		var body any
		if l.Request != nil {
			body = l.Request
		}
		status, got := restCall(t, s, l.Method, path, body)
		if status != l.Status {
			t.Fatalf("%s %s: status %d, recorded %d (%v)", l.Method, path, status, l.Status, got)
		}
		var recorded any
		if len(l.Response) > 0 {
			if err := json.Unmarshal(l.Response, &recorded); err != nil {
				t.Fatalf("recorded response of %s %s: %v", l.Method, l.Path, err)
			}
		}
		if w, g := strings.Join(jsonKeys(recorded), ","), strings.Join(jsonKeys(got), ","); w != g {
			t.Errorf("%s %s: reply keys %s, recorded %s", l.Method, path, g, w)
		}
		rm, _ := recorded.(map[string]any)
		gm, _ := got.(map[string]any)
		if rm != nil && gm != nil {
			if rid, ok := rm["id"].(string); ok && strings.Contains(l.Path, "/channels") && l.Method == "POST" {
				if fid, ok := gm["id"].(string); ok && !strings.Contains(l.Path, "/play") {
					ids[rid] = fid
				}
			}
			for _, k := range []string{"state", "name"} {
				if rv, ok := rm[k].(string); ok && k == "name" {
					if role(rv) != role(str(gm[k])) {
						t.Errorf("%s %s: reply %s %v, recorded %v", l.Method, path, k, gm[k], rv)
					}
				} else if ok && k == "state" && strings.Contains(l.Path, "/play") {
					// A play reply races the playback thread: the recordings hold both
					// "queued" (07–12) and "playing" (13).
					if g := str(gm[k]); g != "queued" && g != "playing" {
						t.Errorf("%s %s: reply state %v, want queued or playing", l.Method, path, gm[k])
					}
				} else if ok && rv != gm[k] {
					t.Errorf("%s %s: reply %s %v, recorded %v", l.Method, path, k, gm[k], rv)
				}
			}
		}
	}
}
