package detect

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
)

// Notes §3 "Transfers": bridge-topic and channel-topic events are not ordered relative to each
// other, so a ChannelLeftBridge may arrive after the channel's ChannelDestroyed. A late event
// about a call that is over must not bring it back: nothing would ever end it again.
func TestALateBridgeEventDoesNotReviveAnEndedCall(t *testing.T) {
	det, rec := newTestDetector(t, Options{})
	s := newSim(t)
	c := s.customer("c1", "+31201234506")
	op := s.phone("p1", "1001", "c1")
	s.created(c)
	s.dialplan(c, "Dial", "PJSIP/1001,20,t")
	s.created(op)
	s.dial(c, op, "")
	s.dial(c, op, "ANSWER")
	s.bridge("b1", c, op)
	s.left(op, "b1")
	s.destroyed(op)
	s.destroyed(c)  // channel topic: the call is over here
	s.left(c, "b1") // bridge topic, delivered late
	s.add(&ari.Event{Type: ari.EventBridgeDestroyed, Bridge: &ari.Bridge{ID: "b1"}})
	s.play(det)
	if got := rec.summary(); len(got) != 0 {
		t.Errorf("answered call gave requests %s", join(got))
	}
	if n := det.Tracked(); n != 0 {
		t.Errorf("%d calls still tracked after every channel was destroyed (late ChannelLeftBridge re-created one)", n)
	}
	det.mu.Lock()
	defer det.mu.Unlock()
	for id, srv := range det.servers {
		if len(srv.chans) != 0 || len(srv.byName) != 0 {
			t.Errorf("server %s: %d channels / %d names left behind", id, len(srv.chans), len(srv.byName))
		}
	}
}

// After a reconnect, Conn delivers Resync first and then the frames the new socket buffered
// while the snapshot was taken (ari.Handler contract). A customer who hung up in voicemail in
// that window is absent from the snapshot, so Resync closes the call out; the buffered
// VM_MESSAGEFILE and ChannelDestroyed of the same channel must not open and close it again:
// one call, at most one request per (number, target).
func TestEventsBufferedDuringAResyncDoNotRepeatARequest(t *testing.T) {
	det, rec := newTestDetector(t, Options{})
	s := newSim(t)
	c := s.customer("c1", "+31201234502")
	p := s.phone("p1", "1003", "c1")
	s.created(c)
	s.dialplan(c, "Dial", "PJSIP/1003,10")
	s.created(p)
	s.dial(c, p, "")
	s.dial(c, p, "RINGING")
	s.dial(c, p, "NOANSWER")
	s.destroyed(p)
	s.dialplan(c, "VoiceMail", "1003@default,u")
	s.state(c, "Up")
	s.play(det)

	// Socket dropped; on the new socket the customer hangs up after leaving a message, just
	// before GET /channels: the snapshot no longer lists c1.
	det.Resync(ari.Snapshot{AsteriskID: s.asteriskID, At: s.now})
	s.add(&ari.Event{Type: ari.EventChannelHangupRequest, Channel: s.snap(c)})
	s.varset(c, "VM_MESSAGEFILE", "/var/spool/asterisk/voicemail/default/1003/INBOX/msg0000")
	s.varset(c, "VMSTATUS", "SUCCESS")
	s.destroyed(c)
	s.play(det)

	n := 0
	for _, r := range rec.requests {
		if r.Number == "+31201234502" && r.Target == "1003" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d requests for one (number, target) in one call: %s", n, join(rec.summary()))
	}
	if k := det.Tracked(); k != 0 {
		t.Errorf("%d calls tracked at the end", k)
	}
}

// While the socket was down, 1003 left the bridge it shared with 1002. A customer who then
// joins 1002 in that bridge, after ringing 1003 in vain, has not reached 1003: the membership
// from the resync snapshot (and from the bridge snapshot in the event) is what counts, not
// what was remembered from before the gap.
func TestBridgeMembershipMissedDuringAGapIsNotTakenForAReach(t *testing.T) {
	det, rec := newTestDetector(t, Options{})
	s := newSim(t)
	p1 := s.channel("p1", "PJSIP/1003-p1", "1003", "from-sip", "1002", "")
	p2 := s.phone("p2", "1002", "p1")
	s.created(p1)
	s.created(p2)
	s.enter(p1, "b1", p1)
	s.enter(p2, "b1", p1, p2)
	s.play(det)

	// p1 left b1 unseen; both phones are still up.
	det.Resync(ari.Snapshot{AsteriskID: s.asteriskID, At: s.now,
		Channels: []ari.Channel{*s.snap(p1), *s.snap(p2)},
		Bridges:  []ari.Bridge{{ID: "b1", Channels: []string{"p2"}}}})

	c := s.customer("c1", "+31201234508")
	ring := s.phone("p3", "1003", "c1")
	s.created(c)
	s.dialplan(c, "Dial", "PJSIP/1003,10")
	s.created(ring)
	s.dial(c, ring, "")
	s.dial(c, ring, "NOANSWER")
	s.destroyed(ring)
	s.enter(c, "b1", p2, c)
	s.left(c, "b1")
	s.destroyed(c)
	s.play(det)

	if got := strings.Join(rec.summary(), ","); got != "unanswered_transfer 1003 +31201234508" {
		t.Errorf("requests %q; want the unanswered ring of 1003 (1003 had left the bridge)", got)
	}
}

// Found by the chaos suite (seed 1): the target answered and was bridged with the customer
// while the socket was down. The resync snapshot shows them in one bridge; that is a reach,
// and the call that ends later owes the customer nothing.
func TestAnAnswerLostInAGapIsSeenInTheResyncsBridges(t *testing.T) {
	det, rec := newTestDetector(t, Options{})
	s := newSim(t)
	c := s.customer("c1", "+31201234509")
	p := s.phone("p1", "2100", "c1")
	s.created(c)
	s.dialplan(c, "Dial", "PJSIP/2100,10")
	s.created(p)
	s.dial(c, p, "")
	s.dial(c, p, "RINGING")
	s.play(det)

	// Gap: 2100 answers and Dial() bridges the two; none of it is seen.
	p.State, c.State = "Up", "Up"
	det.Resync(ari.Snapshot{AsteriskID: s.asteriskID, At: s.now,
		Channels: []ari.Channel{*s.snap(c), *s.snap(p)},
		Bridges:  []ari.Bridge{{ID: "b1", Channels: []string{"c1", "p1"}}}})

	s.destroyed(p)
	s.destroyed(c)
	s.play(det)
	if got := rec.summary(); len(got) != 0 {
		t.Errorf("requests %q; want none: the customer reached 2100 while the socket was down", got)
	}
}

// A copy of an event of a call that is over — the old socket's last frames overlapping the new
// one's after a reconnect, or a bridge-topic event such as BridgeAttendedTransfer delivered after
// the channels it names were destroyed — must not bring the call back: nothing would ever end
// it again (a ChannelCreated has no ChannelDestroyed to follow, the copy's ChannelDestroyed is
// late), so it would be followed, and kept in the Memory, until the idle sweep hours later.
func TestACopyOfAnEventAfterTheCallEndedDoesNotReviveIt(t *testing.T) {
	tests := []struct {
		file string
		typ  ari.EventType // the type of the event delivered again; every one of them in the file
	}{
		{"01-dial-noanswer.jsonl", ari.EventChannelCreated},
		{"04-blind-transfer-noanswer-voicemail.jsonl", ari.EventChannelCreated},
		{"04-blind-transfer-noanswer-voicemail.jsonl", ari.EventBridgeBlindTransfer},
		{"04-blind-transfer-noanswer-voicemail.jsonl", ari.EventDial},
		{"14-attended-transfer-blonde-noanswer.jsonl", ari.EventChannelCreated},
		{"14-attended-transfer-blonde-noanswer.jsonl", ari.EventBridgeAttendedTransfer},
		{"14-attended-transfer-blonde-noanswer.jsonl", ari.EventDial},
	}
	exp := loadExpected(t)
	for _, tt := range tests {
		events := readRecording(t, filepath.Join(tracesDir, tt.file), nil)
		for i, ev := range events {
			if ev.Type != tt.typ {
				continue
			}
			det, rec := newTestDetector(t, Options{})
			for _, e := range events {
				det.HandleEvent(e)
			}
			det.HandleEvent(ev)
			if n := det.Tracked(); n != 0 {
				t.Errorf("%s: %s (event %d) again after the call ended: %d calls tracked", tt.file, tt.typ, i, n)
			}
			det.Resync(ari.Snapshot{AsteriskID: ev.AsteriskID, At: time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)})
			if got, want := rec.summary(), expectedSummary(exp[tt.file]); !slices.Equal(got, want) {
				t.Errorf("%s: %s (event %d) again: requests %s, want %s", tt.file, tt.typ, i, join(got), join(want))
			}
		}
	}
}

// late judges an event by the channels it names: one about its channel (or a peer) is late
// when that channel's call ended; a transfer, which names several, only when all of them did,
// since one leg may be gone by the time the bridge event that moves the customer is read.
func TestAnEventIsLateOnlyWhenWhatItIsAboutEnded(t *testing.T) {
	gone, live := &ari.Channel{ID: "gone"}, &ari.Channel{ID: "live"}
	for _, tc := range []struct {
		name string
		ev   ari.Event
		late bool
	}{
		{"a channel's event after it ended", ari.Event{Type: ari.EventChannelStateChange, Channel: gone}, true},
		{"a copy of ChannelCreated after the call ended", ari.Event{Type: ari.EventChannelCreated, Channel: gone}, true},
		{"a dial whose peer ended", ari.Event{Type: ari.EventDial, Peer: gone, Caller: live}, true},
		{"a live channel's event", ari.Event{Type: ari.EventChannelStateChange, Channel: live}, false},
		{"a transfer whose every leg ended", ari.Event{Type: ari.EventBridgeAttendedTransfer,
			TransfererFirstLeg: gone, TransfererSecondLeg: gone}, true},
		{"a transfer with one leg gone and the customer live", ari.Event{Type: ari.EventBridgeAttendedTransfer,
			TransfererFirstLeg: gone, TransferTarget: live}, false},
		{"a transfer naming no channel", ari.Event{Type: ari.EventBridgeAttendedTransfer}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			det, _ := newTestDetector(t, Options{})
			srv := det.server("pbx1")
			srv.ended.add(gone.ID)
			if got := det.late(srv, &tc.ev); got != tc.late {
				t.Errorf("late = %v; want %v", got, tc.late)
			}
		})
	}
}
