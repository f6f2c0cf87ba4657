package dialer

// A twin (a second process started with this daemon's instance id) takes this daemon's
// applications over while one of its callbacks runs: Asterisk sends the twin every event of
// the callback's legs, and the callback hears nothing until it takes the apps back after
// asterisk.reconnect.max. A wait that ends in that silence has not seen the customer fail to
// answer; the legs are read back from Asterisk (and the twin's witness from Redis) before a
// live conversation is hung up as "did not answer".

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/queue"
)

// twinTakesTheApps starts what a second process with this daemon's application names runs
// that matters here — an ARI connection and a janitor, no dispatcher — and so takes the apps
// over: from here on Asterisk sends this daemon's callback legs' events to the twin.
func (r *rig) twinTakesTheApps() {
	r.t.Helper()
	store := r.newStore(r.redis.Client())
	conn := r.newConn(http.DefaultClient, nil)
	control := NewControl()
	janitor := r.newJanitor(store, conn, control, "twin")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() {
		_ = conn.Run(ctx, ari.Handlers{janitor.Monitor()}, ari.Handlers{control, janitor})
		done <- struct{}{}
	}()
	go func() { _ = janitor.Run(ctx); done <- struct{}{} }()
	r.t.Cleanup(func() { cancel(); <-done; <-done })
	r.waitFor("the daemon to hear that its apps were taken over", func() bool { return !r.conn.Connected() })
}

// The customer answers after the twin took the apps over, and talks for minutes. The callback
// hears neither the answer nor, for a while, anything else; its ring wait runs out. It reads
// its legs back before it gives up, finds the customer's Up, and goes on as connected: the
// promise is kept with no attempt used, and the customer is not hung up on mid-sentence. With a
// confirm digit the customer pressed in the silence, the twin's janitor heard it and wrote it
// to Redis (MarkHeard); the callback reads that instead of asking again into the silence, and
// the promise counts as connected when the twin heard them.
func TestACustomerWhoAnswersWhileATwinHoldsTheAppsIsNotHungUpOn(t *testing.T) {
	const talk = 3 * time.Minute
	for _, tc := range []struct {
		name    string
		confirm string
		phone   aritest.Behavior
	}{
		{"no confirm digit", "", aritest.Behavior{Answer: true, AnswerAfter: 5 * time.Second, HangupAfter: talk}},
		{"the confirm digit pressed in the silence", "1",
			aritest.Behavior{Answer: true, AnswerAfter: 5 * time.Second, HangupAfter: talk, Digits: "1", DigitsAfter: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, monday10, func(c *config.Config) {
				// Far longer than the ring wait (customer_ring_timeout + 15 s), the confirm wait
				// and the talk: the callback is deaf through all of them.
				c.Asterisk[0].Reconnect.Max = config.Duration(10 * time.Minute)
				c.Queues[0].ConfirmDigit = tc.confirm
			}, func(s *aritest.Server) {
				s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
				s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
				s.SetEndpoint(customerPhone(customer1), tc.phone)
			})
			r.drainOnCleanup()
			job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
			claim := r.claimOf(job.ID)
			_, cust, _ := ari.CallbackIDs(claim.ID, claim.Lease.Token)
			r.waitFor("the customer's phone to ring", func() bool { return r.channelState(cust) == "Ringing" })
			r.twinTakesTheApps()

			got := r.settled(job.ID)
			if got.State != queue.StateKept || got.Attempts != 0 {
				t.Errorf("promise %s with %d attempts; want kept with none used\n%s", got.State, got.Attempts, r.story())
			}
			var rec *aritest.ChannelRecord
			for _, c := range r.pbx.ChannelHistory() {
				switch {
				case c.ID == cust:
					rec = &c
				case c.Endpoint == customerPhone(customer1):
					t.Errorf("the customer was rung again (%s) after answering", c.ID)
				}
			}
			switch {
			case rec == nil || rec.Answered.IsZero():
				t.Fatalf("the customer leg %s was never answered: %+v", cust, rec)
			case rec.Destroyed.Sub(rec.Answered) < talk:
				t.Errorf("the customer was hung up on %v after answering; they talked for %v\n%s",
					rec.Destroyed.Sub(rec.Answered), talk, strings.Join(r.requested("DELETE /ari/channels/"+cust), "\n"))
			}
			if tc.confirm != "" && got.ConnectedAt.After(rec.Answered.Add(10*time.Second)) {
				t.Errorf("connected at %v; want when the twin heard the confirm digit, about %v", got.ConnectedAt, rec.Answered)
			}
		})
	}
}

// The twin takes the apps over while the agent's phone rings, and the agent answers into the
// silence. The callback's ring wait runs out; it reads the agent's leg back, finds it Up, and
// gives the promise back without an attempt and without holding the agent back as after a
// no-answer: the agent did answer. Once the daemon has its apps back, the promise is kept.
func TestAnAgentWhoAnswersWhileATwinHoldsTheAppsIsNotCountedAsNotAnswering(t *testing.T) {
	r := newRig(t, monday10, func(c *config.Config) {
		c.Asterisk[0].Reconnect.Max = config.Duration(2 * time.Minute)
	}, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(5*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(5*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	r.drainOnCleanup()
	job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
	claim := r.claimOf(job.ID)
	agent := agentLeg(claim)
	r.waitFor("the agent's phone to ring", func() bool { return r.channelState(agent) == "Ringing" })
	r.twinTakesTheApps()

	got := r.settled(job.ID)
	if got.State != queue.StateKept || got.Attempts != 0 {
		t.Errorf("promise %s with %d attempts; want kept with none used\n%s", got.State, got.Attempts, r.story())
	}
	released := false
	for _, h := range got.History {
		if strings.Contains(h.Detail, "did not answer") {
			t.Errorf("history says %q: the agent answered", h.Detail)
		}
		released = released || strings.Contains(h.Detail, "answered, but this daemon heard nothing of the call")
	}
	if !released {
		t.Errorf("no release says the agent answered unheard; history %+v", got.History)
	}
	for _, p := range r.allProgress() {
		if p.Step == StepSettled && p.AgentResult == ResultNoAnswer {
			t.Errorf("a callback settled with the agent result %s: the agent answered\n%s", p.AgentResult, r.story())
		}
	}
}

// The customer does not answer while the twin holds the apps: Asterisk ends the leg at the ring
// timeout, and the callback hears nothing of it. Its ring wait runs out; the leg read back is
// gone (404), so the callback settles it as a resync would, as ended, using the attempt it was,
// and sends no hang-up for a channel Asterisk no longer has.
func TestACustomerLegThatEndedUnheardIsReadBackAsGone(t *testing.T) {
	r := newRig(t, monday10, func(c *config.Config) {
		c.Asterisk[0].Reconnect.Max = config.Duration(10 * time.Minute)
	}, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), aritest.Rings())
	})
	r.drainOnCleanup()
	job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
	claim := r.claimOf(job.ID)
	_, cust, _ := ari.CallbackIDs(claim.ID, claim.Lease.Token)
	r.waitFor("the customer's phone to ring", func() bool { return r.channelState(cust) == "Ringing" })
	r.twinTakesTheApps()

	var got queue.Job
	r.waitFor("the callback to give the promise back", func() bool {
		var err error
		got, err = r.store.Get(context.Background(), job.Ref())
		return err == nil && got.Attempts == 1
	})
	last := got.History[len(got.History)-1]
	if !strings.Contains(last.Detail, "customer leg ended") {
		t.Errorf("the attempt ended with %q; want the leg read back as ended\n%s", last.Detail, r.story())
	}
	if hung := r.requested("DELETE /ari/channels/" + cust); len(hung) > 0 {
		t.Errorf("the callback hung up %s, which Asterisk no longer had: %v", cust, hung)
	}
}
