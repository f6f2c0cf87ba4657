package detect

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
)

// vmGapCall is a customer's call to 1003 as the recordings show it, up to the point the caller
// is in VoiceMail(1003): straight there (trace 03) or after 1003 rang in vain (trace 02).
func vmGapCall(s *sim, number string, dialFirst bool) *ari.Channel {
	c := s.customer("c1", number)
	s.created(c)
	s.varset(c, "SIPDOMAIN", "127.0.0.1")
	if dialFirst {
		p := s.phone("p1", "1003", "c1")
		s.dialplan(c, "Dial", "PJSIP/1003,10")
		s.created(p)
		s.dial(c, p, "")
		s.dial(c, p, "RINGING")
		s.dial(c, p, "NOANSWER")
		s.destroyed(p)
	} else {
		s.dialplan(c, "NoOp", "straight to voicemail 1003")
	}
	s.dialplan(c, "VoiceMail", "1003@default,u")
	s.state(c, "Up")
	return c
}

// A caller who was in VoiceMail when the monitor socket dropped, and whose message (or hang-up
// in the greeting) and hang-up all fell in the gap, is gone from the resync's snapshot. Whether
// a message was left can no longer be known; losing a caller who left one is worse than calling
// back one who hung up in the greeting, so the call makes its voicemail promise, once, marked
// as made from a voicemail the gap interrupted. The events the new socket buffered about the
// channel change nothing.
func TestAVoicemailInterruptedByASocketGapMakesItsPromise(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dialFirst bool
		buffered  bool // the channel's last events arrive on the new socket after the resync
	}{
		{"straight to voicemail", false, false},
		{"straight to voicemail, last events buffered", false, true},
		{"after an unanswered ring", true, false},
		{"after an unanswered ring, last events buffered", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			det, rec := newTestDetector(t, Options{})
			s := newSim(t)
			c := vmGapCall(s, "+31201234503", tc.dialFirst)
			s.play(det)

			// Socket down: VM_MESSAGEFILE, VMSTATUS and the hang-up are never seen.
			s.events = nil
			det.Resync(ari.Snapshot{AsteriskID: s.asteriskID, At: s.now.Add(200 * time.Millisecond)})
			if tc.buffered {
				s.varset(c, "VM_MESSAGEFILE", "/var/spool/asterisk/voicemail/default/1003/INBOX/msg0000")
				s.varset(c, "VMSTATUS", "SUCCESS")
				s.destroyed(c)
				s.play(det)
			}

			if got := strings.Join(rec.summary(), ","); got != "voicemail 1003 +31201234503" {
				t.Fatalf("requests %q; want one voicemail promise for 1003", got)
			}
			r := rec.requests[0]
			if !r.VoicemailGap {
				t.Errorf("request not marked as made from an interrupted voicemail")
			}
			if r.Channel != "c1" || r.LinkedID != "c1" {
				t.Errorf("request names channel %q of call %q; want the customer's c1", r.Channel, r.LinkedID)
			}
			if st := det.Stats(); st.VoicemailGaps != 1 {
				t.Errorf("stats count %d interrupted voicemails; want 1", st.VoicemailGaps)
			}
			if n := det.Tracked(); n != 0 {
				t.Errorf("%d calls still tracked", n)
			}
		})
	}
}

// A caller still in VoiceMail at the resync — seen entering it before the gap, or entering it
// during the gap and listed there by the snapshot — is followed on: nothing is decided at the
// resync, and the events that follow decide once, as without a gap. Should the caller be gone
// at a later resync, the snapshot's VoiceMail is what the gap interrupted.
func TestACallerStillInVoicemailAtTheResyncIsFollowedOn(t *testing.T) {
	const file = "/var/spool/asterisk/voicemail/default/1003/INBOX/msg0000"
	for _, tc := range []struct {
		name      string
		seenEnter bool // the detector saw the VoiceMail() start before the gap
		then      string
		want      string
		wantGap   bool
	}{
		{"message left", true, "message", "voicemail 1003 +31201234503", false},
		{"hang-up in the greeting", true, "greeting", "", false},
		{"entered in the gap, message left", false, "message", "voicemail 1003 +31201234503", false},
		{"entered in the gap, hang-up in the greeting", false, "greeting", "", false},
		{"entered in the gap, gone at the next resync", false, "second gap", "voicemail 1003 +31201234503", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			det, rec := newTestDetector(t, Options{})
			s := newSim(t)
			c := s.customer("c1", "+31201234503")
			s.created(c)
			s.dialplan(c, "NoOp", "straight to voicemail 1003")
			if tc.seenEnter {
				s.dialplan(c, "VoiceMail", "1003@default,u")
				s.state(c, "Up")
			}
			s.play(det)

			c.Dialplan.AppName, c.Dialplan.AppData, c.State = "VoiceMail", "1003@default,u", "Up"
			det.Resync(ari.Snapshot{AsteriskID: s.asteriskID, At: s.now, Channels: []ari.Channel{*s.snap(c)}})
			if got := rec.summary(); len(got) != 0 {
				t.Fatalf("the resync decided %s for a caller still in VoiceMail", join(got))
			}
			if det.Tracked() != 1 {
				t.Fatalf("tracking %d calls after the resync; want the caller's", det.Tracked())
			}

			switch tc.then {
			case "message":
				s.add(&ari.Event{Type: ari.EventChannelHangupRequest, Channel: s.snap(c)})
				s.varset(c, "VM_MESSAGEFILE", file)
				s.varset(c, "VMSTATUS", "SUCCESS")
				s.destroyed(c)
				s.play(det)
			case "greeting":
				s.add(&ari.Event{Type: ari.EventChannelHangupRequest, Channel: s.snap(c)})
				s.varset(c, "VMSTATUS", "FAILED")
				s.destroyed(c)
				s.play(det)
			case "second gap":
				det.Resync(ari.Snapshot{AsteriskID: s.asteriskID, At: s.now.Add(time.Second)})
			}

			if got := strings.Join(rec.summary(), ","); got != tc.want {
				t.Fatalf("requests %q; want %q", got, tc.want)
			}
			for _, r := range rec.requests {
				if r.VoicemailGap != tc.wantGap {
					t.Errorf("request marked gap=%v; want %v", r.VoicemailGap, tc.wantGap)
				}
			}
			if n := det.Tracked(); n != 0 {
				t.Errorf("%d calls still tracked", n)
			}
		})
	}
}

// What the detector saw before the gap decides when it already tells the voicemail's end:
// VMSTATUS seen means app_voicemail is done (a message shows as VM_MESSAGEFILE before it), so
// a caller who hung up in the greeting and whose ChannelDestroyed alone fell in the gap still
// makes no promise. A call that never reached VoiceMail keeps the close-out it had.
func TestAGapAfterTheVoicemailEndedDecidesAsBefore(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail func(s *sim, c *ari.Channel)
		want string
	}{
		{"hang-up in the greeting seen, destroy lost", func(s *sim, c *ari.Channel) {
			s.dialplan(c, "VoiceMail", "1003@default,u")
			s.add(&ari.Event{Type: ari.EventChannelHangupRequest, Channel: s.snap(c)})
			s.varset(c, "VMSTATUS", "FAILED")
		}, ""},
		{"message seen, destroy lost", func(s *sim, c *ari.Channel) {
			s.dialplan(c, "VoiceMail", "1003@default,u")
			s.varset(c, "VM_MESSAGEFILE", "/var/spool/asterisk/voicemail/default/1003/INBOX/msg0001")
			s.varset(c, "VMSTATUS", "SUCCESS")
		}, "voicemail 1003 +31201234503"},
		{"voicemail left for the dialplan's next step", func(s *sim, c *ari.Channel) {
			s.dialplan(c, "VoiceMail", "1003@default,u")
			s.varset(c, "VMSTATUS", "USEREXIT")
			s.dialplan(c, "Playback", "goodbye")
		}, ""},
		{"never in voicemail, a ring lost to the gap", func(s *sim, c *ari.Channel) {
			p := s.phone("p1", "1003", "c1")
			s.dialplan(c, "Dial", "PJSIP/1003,10")
			s.created(p)
			s.dial(c, p, "")
		}, "unanswered_transfer 1003 +31201234503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			det, rec := newTestDetector(t, Options{})
			s := newSim(t)
			c := s.customer("c1", "+31201234503")
			s.created(c)
			tc.tail(s, c)
			s.play(det)
			det.Resync(ari.Snapshot{AsteriskID: s.asteriskID, At: s.now})
			if got := strings.Join(rec.summary(), ","); got != tc.want {
				t.Fatalf("requests %q; want %q", got, tc.want)
			}
			for _, r := range rec.requests {
				if r.VoicemailGap {
					t.Errorf("request %s %s marked as from an interrupted voicemail; its end was seen", r.Reason, r.Target)
				}
			}
			if st := det.Stats(); st.VoicemailGaps != 0 {
				t.Errorf("stats count %d interrupted voicemails; want 0", st.VoicemailGaps)
			}
		})
	}
}

// A daemon killed while the caller is in VoiceMail, restarted after the caller has gone: the
// kept call says which VoiceMail() the caller was running, so the restarted daemon's first
// resync makes the voicemail promise as the gap rule says.
func TestARestartDuringVoicemailStillMakesThePromise(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	rec := &recorder{}
	clk := clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	s := newSim(t)
	vmGapCall(s, "+31201234503", false)
	before := startProcess(t, rdb, rec, clk)
	before.feed(s.events)
	before.flush(t)
	kept := rdb.Get(context.Background(), "callbackd:call:"+s.asteriskID+":c1").Val()
	if !strings.HasPrefix(kept, `{"v":2,`) || !strings.Contains(kept, `"vm":["1003"]`) {
		t.Fatalf("kept call %s; want version 2 naming the VoiceMail(1003) in progress", kept)
	}

	after := startProcess(t, rdb, rec, clk)
	if n, problems := after.restore(t); n != 1 || len(problems) > 0 {
		t.Fatalf("restored %d calls (%v); want the caller's", n, problems)
	}
	after.det.Resync(ari.Snapshot{AsteriskID: s.asteriskID, At: s.now.Add(time.Minute)})
	after.flush(t)
	if got := strings.Join(rec.summary(), ","); got != "voicemail 1003 +31201234503" {
		t.Fatalf("requests %q; want the voicemail promise", got)
	}
	if !rec.requests[0].VoicemailGap {
		t.Errorf("request not marked as from an interrupted voicemail")
	}
	if left := rdb.Keys(context.Background(), "callbackd:call*").Val(); len(left) > 0 {
		t.Errorf("the call is over, Redis still keeps %v", left)
	}
}

// Every recording with a VoiceMail(), cut by a socket drop at each event from the caller's
// entering it until app_voicemail's VMSTATUS, with everything gone by the resync: one voicemail
// promise for the mailbox, whatever of the message the detector saw.
func TestEveryRecordedVoicemailCutByAGapMakesItsPromise(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings in %s (%v)", tracesDir, err)
	}
	cut := 0
	for _, f := range files {
		events := readRecording(t, f, nil)
		enter, end := -1, -1
		var want string
		for i, ev := range events {
			switch {
			case enter < 0 && ev.Type == ari.EventChannelDialplan && ev.DialplanApp == "VoiceMail":
				enter = i
				want = "voicemail " + voicemailBoxes(ev.DialplanAppData)[0] + " " + ev.Channel.Caller.Number
			case enter >= 0 && end < 0 && ev.Type == ari.EventChannelVarset && ev.Variable == "VMSTATUS":
				end = i
			}
		}
		if enter < 0 {
			continue
		}
		if end < 0 {
			t.Fatalf("%s: a VoiceMail() without VMSTATUS", filepath.Base(f))
		}
		for k := enter + 1; k <= end; k++ {
			det, rec := newTestDetector(t, Options{})
			for _, ev := range events[:k] {
				det.HandleEvent(ev)
			}
			det.Resync(ari.Snapshot{AsteriskID: events[0].AsteriskID, At: time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)})
			if got := strings.Join(rec.summary(), ","); got != want {
				t.Errorf("%s, socket dropped after event %d (%s %s): requests %q; want %q", filepath.Base(f), k,
					events[k-1].Type, events[k-1].Variable, got, want)
			}
			cut++
		}
	}
	if cut == 0 {
		t.Fatal("no recording has a VoiceMail()")
	}
}
