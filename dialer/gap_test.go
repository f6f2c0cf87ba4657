package dialer

// Socket gaps and leftovers (issue 11): what only an event would have said is read back from
// Asterisk after a reconnect, and a promise is not dialled over a leg of its previous claim.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/queue"
)

// playing reports whether the fake Asterisk still holds playback id.
func (r *rig) playing(id string) bool {
	for _, p := range r.pbx.Playbacks() {
		if p.ID == id {
			return true
		}
	}
	return false
}

// firstRequest is the index of the first REST request whose line contains all of parts, -1
// when there is none.
func (r *rig) firstRequest(parts ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
next:
	for i, line := range r.requests {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		return i
	}
	return -1
}

// claimOf waits until promise id is claimed (state dialing) and returns that claim.
func (r *rig) claimOf(id string) queue.Job {
	r.t.Helper()
	var j queue.Job
	r.waitFor("promise "+id+" to be claimed", func() bool {
		var err error
		j, err = r.store.Get(context.Background(), queue.Ref{Queue: "support", ID: id})
		return err == nil && j.State == queue.StateDialing
	})
	return j
}

// The events socket drops while the agent hears the whisper and stays down until the whisper
// ended, so its PlaybackFinished is lost (Asterisk queues nothing for an app without a socket).
// The reconnect's resync hands the callback a snapshot of the agent leg; the callback reads the
// playback back (GET /playbacks/{id}: 404, over) and dials the customer, instead of leaving the
// agent in silence until the play timeout (items × 15 s + 5 s).
func TestAWhisperWhoseEndFellInASocketGapIsReadBackAtTheReconnect(t *testing.T) {
	r := newRig(t, monday10, func(c *config.Config) {
		// Short items, each worth 15 s of play timeout: the fault shows as a wait of minutes for
		// seconds of audio, and the reconnect has ample time however slow the machine.
		c.Dialer.Whisper = []string{"sound:callbackd-callback-for", "digits:{number}"}
		for range 10 {
			c.Dialer.Whisper = append(c.Dialer.Whisper, "sound:beep")
		}
	}, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	r.drainOnCleanup()
	job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
	claim := r.claimOf(job.ID)
	_, _, bridge := ari.CallbackIDs(claim.ID, claim.Lease.Token)
	whisper := bridge + "-whisper"
	r.waitFor("the whisper to play", func() bool { return r.playing(whisper) })

	r.socketGap(func() bool { return !r.playing(whisper) })

	got := r.settled(job.ID)
	if got.State != queue.StateKept || got.Attempts != 0 {
		t.Errorf("promise %s with %d attempts; want kept with none used\n%s", got.State, got.Attempts, r.story())
	}
	read := r.firstRequest("GET /ari/playbacks/" + whisper)
	dialled := r.firstRequest("POST /ari/channels/create")
	switch {
	case read < 0:
		t.Errorf("the callback never read the whisper back after the reconnect: it waited out the play timeout before dialling the customer\n%s", r.story())
	case dialled < read:
		t.Errorf("the customer was dialled (request %d) before the whisper was read back (request %d)", dialled, read)
	}
}
