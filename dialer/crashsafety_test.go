package dialer

// Crash safety of a callback (issue 11): what a daemon that dies mid-call leaves in Redis must
// let the next one settle the promise as the call deserved.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/queue"
)

// channelListed reports whether the fake Asterisk lists channel id.
func (r *rig) channelListed(id string) bool {
	for _, ch := range r.pbx.Channels() {
		if ch.ID == id {
			return true
		}
	}
	return false
}

// The claim records that the customer is about to be rung before their leg exists, and not
// while only the agent rings: a daemon killed at any instant leaves a lease whose expiry costs
// an attempt exactly when the customer's phone can have rung.
func TestTheClaimRecordsTheCustomerDialBeforeTheCustomerLegExists(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		agent := aritest.Answers(10 * time.Second)
		s.SetEndpoint("PJSIP/1002", agent)
		s.SetEndpoint("PJSIP/1003", agent)
		s.SetEndpoint(customerPhone(customer1), aritest.Rings())
	})
	r.drainOnCleanup()
	job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
	var claimed queue.Job
	r.waitFor("the agent to ring", func() bool {
		j, err := r.store.Get(context.Background(), job.Ref())
		claimed = j
		return err == nil && j.State == queue.StateDialing && r.channelListed(agentLeg(j))
	})
	if !claimed.DialledAt.IsZero() {
		t.Errorf("the agent's phone rings and the claim already reads the customer dialled at %v", claimed.DialledAt)
	}
	_, cust, _ := ari.CallbackIDs(claimed.ID, claimed.Lease.Token)
	r.waitFor("the customer leg to exist", func() bool { return r.channelListed(cust) })
	got, err := r.store.Get(context.Background(), job.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if got.DialledAt.IsZero() || got.Lease.Token != claimed.Lease.Token {
		t.Errorf("customer leg %s exists and the claim (token %d, now %d) reads DialledAt %v: a crash now would cost no attempt",
			cust, claimed.Lease.Token, got.Lease.Token, got.DialledAt)
	}
}

func agentLeg(j queue.Job) string {
	a, _, _ := ari.CallbackIDs(j.ID, j.Lease.Token)
	return a
}

// channelState is the fake Asterisk's state of channel id, "" when it is not listed.
func (r *rig) channelState(id string) string {
	for _, ch := range r.pbx.Channels() {
		if ch.ID == id {
			return ch.State
		}
	}
	return ""
}

// redisOutage keeps what Redis holds (the rig's Redis has no AOF: SAVE stands in for it), then
// kills it until back is true.
func (r *rig) redisOutage(back func() bool) {
	r.t.Helper()
	if err := r.redis.Client().Save(context.Background()).Err(); err != nil {
		r.t.Fatalf("SAVE before the outage: %v", err)
	}
	r.redis.Stop()
	r.waitFor("the outage to last", back)
	r.redis.Restart()
}

// The customer answers and confirms while Redis is down, and Redis stays down longer than the
// lease: the connect is held in memory and written when Redis is back, the conversation is not
// cut, the promise is kept once, and the customer is never dialled again.
func TestAConversationDuringARedisOutageLongerThanTheLeaseIsKeptNotRedialled(t *testing.T) {
	r, job, claimed := longConversation(t, 5*time.Minute, queue.StateDialing, func(c *config.Config) {
		c.Queues[0].ConfirmDigit = "1"
		c.Queues[0].ConfirmTimeout = config.Duration(time.Minute)
	})
	_, cust, _ := ari.CallbackIDs(claimed.ID, claimed.Lease.Token)
	r.waitFor("the customer to answer", func() bool { return r.channelState(cust) == "Up" })

	outage := r.clk.Now()
	r.redisOutage(func() bool {
		if r.clk.Now().Sub(outage) < time.Second {
			return false
		}
		r.pbx.SendDTMF(cust, "1") // confirmed while Redis is down: the connect cannot be written
		return r.clk.Now().Sub(outage) > 4*r.cfg.Dialer.Lease.D()
	})

	got := r.settled(job.ID)
	if got.State != queue.StateKept || got.Attempts != 0 {
		t.Errorf("promise %s with %d attempts; want kept with none used\n%s", got.State, got.Attempts, r.story())
	}
	if n := len(r.requested("POST", "/channels/create")); n != 1 {
		t.Errorf("customer legs created: %d, want 1\n%s", n, r.story())
	}
	if hung := r.requested("DELETE", "/channels/"+cust); len(hung) > 0 {
		t.Errorf("callbackd hung up the talking customer: %v", hung)
	}
	if steps := r.steps(job.ID); steps[len(steps)-1] != "bob settled kept answered/answered" {
		t.Errorf("steps %v, want the conversation settled kept once", steps)
	}
}

// Another daemon takes the lease back while the customer talks (its Reclaim saw it expired):
// it finishes the promise kept, and this daemon's callback neither hangs up on the customer
// nor settles the promise a second time.
func TestALeaseTakenBackDuringTheConversationDoesNotCutIt(t *testing.T) {
	r, job, talking := longConversation(t, 3*time.Minute, queue.StateConnected, nil)
	_, cust, _ := ari.CallbackIDs(talking.ID, talking.Lease.Token)
	// As another daemon sees it after an outage: the lease ran out, and its Reclaim takes it.
	leases := "callbackd:{support}:leases"
	if err := r.redis.Client().ZAdd(context.Background(), leases, redis.Z{Score: 1, Member: job.ID}).Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := r.store.Reclaim(context.Background(), "support"); err != nil || res.Kept != 1 {
		t.Fatalf("the other daemon's Reclaim = %+v, %v; want the conversation finished kept", res, err)
	}
	r.waitFor("the conversation to end", func() bool {
		_, ok := r.stepAt(job.ID, StepSettled)
		_, gone := r.stepAt(job.ID, StepTakenAway)
		return ok || gone
	})
	if hung := r.requested("DELETE", "/channels/"+cust); len(hung) > 0 {
		t.Errorf("callbackd hung up the talking customer: %v\n%s", hung, r.story())
	}
	if steps := r.steps(job.ID); steps[len(steps)-1] != "bob settled kept answered/answered" {
		t.Errorf("steps %v, want the conversation reported settled kept", steps)
	}
}

// longConversation starts a callback whose customer answers and talks for talk, and returns
// once its promise reached state (with that claim).
func longConversation(t *testing.T, talk time.Duration, state queue.State, edit func(*config.Config)) (*rig, queue.Job, queue.Job) {
	t.Helper()
	r := newRig(t, monday10, edit, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		long := aritest.Answers(4 * time.Second)
		long.HangupAfter = talk
		s.SetEndpoint(customerPhone(customer1), long)
	})
	r.drainOnCleanup()
	job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
	var claimed queue.Job
	r.waitFor("the promise to be "+string(state), func() bool {
		j, err := r.store.Get(context.Background(), job.Ref())
		claimed = j
		return err == nil && j.State == state
	})
	return r, job, claimed
}

// The chaos suite's seed 1: this daemon is cut off from Redis after the customer answered and
// before the connect was written, longer than the lease; another daemon's Reclaim reads the
// claim as an unanswered dial and hands the promise back. When the partition heals, the
// callback takes it back as the conversation it is (MarkAdopted), so no agent rings it again,
// the customer is not dialled a second time, no attempt is used, and it is kept once. Seed 5
// of the long run: the other daemon also claimed it again at once (its agent was free) and
// only rang its agent before the partition healed; the conversation still wins, and that
// claim finds its lease gone before it can ring the customer.
func TestALeaseReclaimedElsewhereBeforeTheConnectWasWrittenIsTakenBackNotRedialled(t *testing.T) {
	for _, claimedAgain := range []bool{false, true} {
		name := "handed back"
		if claimedAgain {
			name = "claimed again by the other daemon"
		}
		t.Run(name, func(t *testing.T) {
			r, job, claimed := longConversation(t, 5*time.Minute, queue.StateDialing, func(c *config.Config) {
				c.Queues[0].ConfirmDigit = "1"
				c.Queues[0].ConfirmTimeout = config.Duration(time.Minute)
			})
			_, cust, _ := ari.CallbackIDs(claimed.ID, claimed.Lease.Token)
			r.waitFor("the customer to answer", func() bool { return r.channelState(cust) == "Up" })
			r.cut.Store(true)
			r.pbx.SendDTMF(cust, "1") // confirmed: the connect cannot be written
			r.waitFor("the callback to hold the connect", func() bool {
				_, ok := r.stepAt(job.ID, StepCustomerAnswered)
				return ok
			})
			cutAt := r.clk.Now()
			r.waitFor("the lease to run out", func() bool { return r.clk.Now().Sub(cutAt) > 2*r.cfg.Dialer.Lease.D() })
			other, err := queue.New(r.redis.Client(), queue.Options{Clock: r.clk, Queues: []string{"support"}})
			if err != nil {
				t.Fatal(err)
			}
			if res, err := other.Reclaim(context.Background(), "support"); err != nil || res.Reclaimed != 1 {
				t.Fatalf("the other daemon's Reclaim = %+v, %v; want the claim taken back", res, err)
			}
			var second *queue.Job
			if claimedAgain {
				second, err = other.Claim(context.Background(), "support", queue.ClaimOptions{Worker: "other/bob", Lease: time.Hour})
				if err != nil || second == nil || second.ID != job.ID {
					t.Fatalf("the other daemon's claim = %+v %v; want the promise", second, err)
				}
			}
			r.cut.Store(false)

			got := r.settled(job.ID)
			if got.State != queue.StateKept || got.Attempts != 0 {
				t.Errorf("promise %s with %d attempts; want kept with none used\n%s", got.State, got.Attempts, r.story())
			}
			if n := len(r.requested("POST", "/channels/create")); n != 1 {
				t.Errorf("customer legs created: %d, want 1: the customer was dialled again\n%s", n, r.story())
			}
			if hung := r.requested("DELETE", "/channels/"+cust); len(hung) > 0 {
				t.Errorf("callbackd hung up the talking customer: %v", hung)
			}
			if claimedAgain {
				if _, err := other.MarkDialled(context.Background(), second.Ref(), second.Lease.Token); !errors.Is(err, queue.ErrStaleToken) {
					t.Errorf("the other daemon's claim may still ring the customer: MarkDialled = %v; want ErrStaleToken", err)
				}
			}
		})
	}
}
