package dialer

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

// After a kill -9 the promise came back (Reclaim) while the dead daemon's customer leg is still
// up. The next claim must not ring anyone while that leg lives: it hands the promise back
// without using an attempt and looks again shortly; once the leg is gone the callback runs.
func TestAPromiseIsNotDialledWhileALegOfItsPreviousClaimIsAlive(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	r.drainOnCleanup()
	// The dead daemon's claim, its customer leg talking on the PBX, and the promise handed back.
	job, old := r.claimedElsewhere("dead-daemon")
	_, oldCust, _ := ari.CallbackIDs(old.ID, old.Lease.Token)
	r.pbx.CreateChannel(aritest.ChannelSpec{ID: oldCust, Endpoint: customerPhone(customer1), State: "Up"})
	if _, err := r.store.Release(context.Background(), old.Ref(), old.Lease.Token, r.clk.Now(), "lease expired"); err != nil {
		t.Fatal(err)
	}
	r.resumeAgents()

	handedBack := func() int {
		n := 0
		for _, p := range r.allProgress() {
			if p.Job.ID == job.ID && p.Step == StepSettled && p.State.Open() {
				n++
			}
		}
		return n
	}
	legs := func() []string {
		var out []string
		for _, c := range r.pbx.ChannelHistory() {
			if c.ID != oldCust && strings.Contains(c.ID, strings.ToLower(job.ID)) {
				out = append(out, c.ID)
			}
		}
		return out
	}
	r.waitFor("the new claims to hand the promise back, or a leg of theirs", func() bool { return handedBack() >= 2 || len(legs()) > 0 })
	if rung := legs(); len(rung) > 0 {
		t.Fatalf("legs %v were made for the promise while its previous claim's customer leg is up\n%s", rung, r.story())
	}
	r.pbx.Hangup(oldCust, 16)

	got := r.settled(job.ID)
	if got.State != queue.StateKept || got.Attempts != 0 {
		t.Errorf("promise %s with %d attempts; want kept with none used\n%s", got.State, got.Attempts, r.story())
	}
	var gone time.Time
	for _, c := range r.pbx.ChannelHistory() {
		if c.ID == oldCust {
			gone = c.Destroyed
		}
	}
	for _, c := range r.pbx.ChannelHistory() {
		if c.ID != oldCust && strings.Contains(c.ID, strings.ToLower(job.ID)) && c.Created.Before(gone) {
			t.Errorf("leg %s of the promise was created at %v, while its previous claim's customer leg lived (until %v)", c.ID, c.Created, gone)
		}
	}
}

// The earlier claim's callback lives on in a daemon cut off from Redis and makes its customer
// leg while the new claim's agent hears the whisper: the new callback looks again just before
// its customer's phone could ring, and gives the promise back without dialling or charging.
func TestACustomerIsNotDialledWhenAnEarlierClaimsLegAppearedDuringTheWhisper(t *testing.T) {
	r := newRig(t, monday10, func(c *config.Config) {
		// A whisper of a minute or more, so the test has time to make the leg during it.
		c.Dialer.Whisper = []string{"digits:" + strings.Repeat("1234567890", 10), "digits:" + strings.Repeat("1234567890", 10)}
	}, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	r.drainOnCleanup()
	// The cut-off daemon's claim, taken back while its callback goes on without Redis.
	job, old := r.claimedElsewhere("cut-off-daemon")
	if _, err := r.store.Release(context.Background(), old.Ref(), old.Lease.Token, r.clk.Now(), "lease expired"); err != nil {
		t.Fatal(err)
	}
	r.resumeAgents()
	claim := r.claimOf(job.ID)
	_, cust, bridge := ari.CallbackIDs(claim.ID, claim.Lease.Token)
	r.waitFor("the whisper to play", func() bool { return r.playing(bridge + "-whisper") })
	_, oldCust, _ := ari.CallbackIDs(old.ID, old.Lease.Token)
	r.pbx.CreateChannel(aritest.ChannelSpec{ID: oldCust, Endpoint: customerPhone(customer1), State: "Ringing"})

	r.waitFor("the callback to end", func() bool { _, ok := r.stepAt(job.ID, StepSettled); return ok })
	if r.channelListed(cust) || len(r.requested("POST /ari/channels/"+cust+"/dial")) > 0 {
		t.Fatalf("the customer was dialled while leg %s of an earlier claim rang them\n%s", oldCust, r.story())
	}
	if got, err := r.store.Get(context.Background(), job.Ref()); err != nil || got.Attempts != 0 || !got.State.Open() || !got.DialledAt.IsZero() {
		t.Errorf("promise after the hand-back: %+v, %v; want it open, no attempt used, no customer dial recorded", got, err)
	}
	r.pbx.Hangup(oldCust, 16)
	if got := r.settled(job.ID); got.State != queue.StateKept || got.Attempts != 0 {
		t.Errorf("promise %s with %d attempts; want kept with none used\n%s", got.State, got.Attempts, r.story())
	}
}

// A promise's first claim has no earlier claim whose leg could be up, so its callback spares
// Asterisk a listing of every channel (thousands on a busy PBX); a claim after an earlier one
// lists them before the agent is rung and again before the customer is dialled.
func TestOnlyAClaimAfterAnEarlierOneListsThePBXsChannels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		earlier bool
		want    int
	}{
		{"the promise's first claim", false, 0},
		{"a claim after an earlier one", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, monday10, nil, func(s *aritest.Server) {
				s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
				s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
				s.SetEndpoint(customerPhone(customer1), talks())
			})
			r.drainOnCleanup()
			// Only the callbacks' listings count: the janitor's looks and the resyncs list the
			// channels too, through paths of their own. (Telling them apart in the fake's log of
			// requests, by the bridge listing that follows the others, failed when a concurrent
			// request was logged in between.)
			listings := func() int { return int(r.listings.Load()) }
			before := listings()
			var job queue.Job
			if tc.earlier {
				var old *queue.Job
				job, old = r.claimedElsewhere("other-daemon")
				if _, err := r.store.Release(context.Background(), old.Ref(), old.Lease.Token, r.clk.Now(), "agent busy"); err != nil {
					t.Fatal(err)
				}
				r.resumeAgents()
			} else {
				job = r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
			}
			if got := r.settled(job.ID); got.State != queue.StateKept {
				t.Fatalf("promise %s; want kept\n%s", got.State, r.story())
			}
			if n := listings() - before; n != tc.want {
				t.Errorf("the callback listed the PBX's channels %d times; want %d", n, tc.want)
			}
		})
	}
}

// claimedElsewhere makes a voicemail promise for customer1 and has worker, another daemon
// (dead, cut off or busy elsewhere), claim it before this rig's daemon can: the rig's agents
// are paused until resumeAgents.
func (r *rig) claimedElsewhere(worker string) (queue.Job, *queue.Job) {
	r.t.Helper()
	for _, a := range []string{"bob", "anna"} {
		if err := r.pool.SetPaused(a, true); err != nil {
			r.t.Fatal(err)
		}
	}
	job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
	claim, err := r.store.Claim(context.Background(), "support", queue.ClaimOptions{Worker: worker, Lease: 30 * time.Second})
	if err != nil || claim == nil || claim.ID != job.ID {
		r.t.Fatalf("the claim of %s: %+v, %v", worker, claim, err)
	}
	return job, claim
}

// resumeAgents lets the rig's agents take calls again and wakes its dispatcher.
func (r *rig) resumeAgents() {
	r.t.Helper()
	for _, a := range []string{"bob", "anna"} {
		if err := r.pool.SetPaused(a, false); err != nil {
			r.t.Fatal(err)
		}
	}
	r.disp.Wake()
}
