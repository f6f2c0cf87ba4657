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

// The customer answers and is asked for the confirm digit; the socket drops and the customer
// presses in the gap: that DTMF is lost for good. At the reconnect the callback asks again —
// the greeting, which asks for the digit, plays once more and the confirm timeout restarts — and
// the customer's second press connects them: the promise is kept, not no_confirmation. The gap
// may fall after the greeting, or during it, so that its PlaybackFinished is lost too and the
// callback learns at the resync both that the greeting is over and that a key may have been
// lost: nothing else will happen on the line, so it must ask again at once (a chaos-like run
// of this test found it waiting out the confirm timeout instead).
func TestAConfirmDigitLostInASocketGapIsAskedForAgain(t *testing.T) {
	// A greeting of some 22 s, so that a gap begun while it plays almost surely ends after it.
	long := []string{"sound:callbackd-press-1", "digits:" + strings.Repeat("0123456789", 3)}
	for _, tc := range []struct {
		name     string
		greeting []string
		during   bool // the gap begins while the greeting plays and ends after it
	}{
		{"the gap falls after the greeting", []string{"sound:callbackd-press-1"}, false},
		{"the greeting ends in the gap", long, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, monday10, func(c *config.Config) {
				c.Queues[0].Greeting = tc.greeting
				c.Queues[0].ConfirmDigit = "1"
				c.Queues[0].ConfirmTimeout = config.Duration(10 * time.Minute)
			}, func(s *aritest.Server) {
				s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
				s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
				// Answers and stays on the line until the test hangs up, however slow the machine.
				s.SetEndpoint(customerPhone(customer1), aritest.Answers(4*time.Second))
			})
			r.drainOnCleanup()
			job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
			claim := r.claimOf(job.ID)
			_, cust, bridge := ari.CallbackIDs(claim.ID, claim.Lease.Token)
			greeting := bridge + "-greeting"
			plays := func() int { return len(r.requested("POST /ari/channels/"+cust+"/play", "playbackId="+greeting)) }
			if tc.during {
				r.waitFor("the greeting to be requested", func() bool { return plays() == 1 })
				r.socketGap(func() bool {
					r.pbx.SendDTMF(cust, "1") // no socket: Asterisk keeps no record of it
					return !r.playing(greeting)
				})
			} else {
				r.waitFor("the greeting to be played", func() bool { return plays() == 1 && !r.playing(greeting) })
				r.socketGap(func() bool {
					r.pbx.SendDTMF(cust, "1")
					return true
				})
			}

			r.waitFor("the greeting again, or the callback's end", func() bool {
				_, ended := r.stepAt(job.ID, StepSettled)
				return plays() >= 2 || ended
			})
			if plays() < 2 {
				t.Fatalf("after the reconnect the customer was not asked again (greeting played %d times)\n%s", plays(), r.story())
			}
			r.pbx.SendDTMF(cust, "1")
			r.waitFor("the customer to be connected, or the callback's end", func() bool {
				_, ok := r.stepAt(job.ID, StepCustomerAnswered)
				_, ended := r.stepAt(job.ID, StepSettled)
				return ok || ended
			})
			r.pbx.Hangup(cust, 16)
			got := r.settled(job.ID)
			if got.State != queue.StateKept || got.Attempts != 0 {
				t.Errorf("promise %s with %d attempts; want kept with none used\n%s", got.State, got.Attempts, r.story())
			}
			if steps := r.steps(job.ID); steps[len(steps)-1] != "bob settled kept answered/answered" {
				t.Errorf("steps %v; want the customer connected and the promise kept", steps)
			}
		})
	}
}

// A flapping socket cannot hold a customer who never presses for ever: after three asks again
// another gap asks nothing more, the confirm timeout runs out and the call counts as
// no_confirmation (an attempt used), as without gaps.
func TestAConfirmDigitIsAskedForAgainABoundedNumberOfTimes(t *testing.T) {
	r := newRig(t, monday10, func(c *config.Config) {
		c.Queues[0].Greeting = []string{"sound:callbackd-press-1"}
		c.Queues[0].ConfirmDigit = "1"
		c.Queues[0].ConfirmTimeout = config.Duration(5 * time.Minute)
	}, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		long := aritest.Answers(4 * time.Second)
		long.HangupAfter = time.Hour
		s.SetEndpoint(customerPhone(customer1), long)
	})
	r.drainOnCleanup()
	job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
	claim := r.claimOf(job.ID)
	_, cust, bridge := ari.CallbackIDs(claim.ID, claim.Lease.Token)
	plays := func() int {
		return len(r.requested("POST /ari/channels/"+cust+"/play", "playbackId="+bridge+"-greeting"))
	}
	for asked := 1; asked <= maxConfirmAsksAgain+1; asked++ {
		r.waitFor("the greeting to have been played", func() bool { return plays() >= asked && len(r.pbx.Playbacks()) == 0 })
		r.socketGap(func() bool { return true })
		if asked <= maxConfirmAsksAgain {
			r.waitFor("the greeting again", func() bool { return plays() > asked })
		}
	}
	r.waitFor("the callback to end", func() bool { _, ok := r.stepAt(job.ID, StepSettled); return ok })
	if n := plays(); n != 1+maxConfirmAsksAgain {
		t.Errorf("the greeting played %d times; want once and %d times again", n, maxConfirmAsksAgain)
	}
	got, err := r.store.Get(context.Background(), job.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempts != 1 || !got.State.Open() {
		t.Errorf("promise %s with %d attempts; want it back for a retry with one attempt used", got.State, got.Attempts)
	}
	if steps := r.steps(job.ID); !strings.HasSuffix(steps[len(steps)-1], "settled "+string(got.State)+" answered/"+ResultNoConfirmation) {
		t.Errorf("steps %v; want the customer counted %s", steps, ResultNoConfirmation)
	}
}
