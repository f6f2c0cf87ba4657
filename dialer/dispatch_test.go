package dialer

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/queue"
)

const (
	customer1 = "+31201234501"
	customer2 = "+31201234502"
)

func customerPhone(n string) string { return "PJSIP/" + n + "@provider" }

// talks answers after a few seconds and hangs up after a short conversation.
func talks() aritest.Behavior {
	b := aritest.Answers(4 * time.Second)
	b.HangupAfter = 90 * time.Second
	return b
}

func TestAnsweredCallbackIsKeptByTheOwnerWithWhisperAndBothLegsBridged(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	job := r.enqueue(customer1, "voicemail", "1003", 2*time.Hour)
	got := r.settled(job.ID)

	if got.State != queue.StateKept || got.Attempts != 0 || got.ConnectedAt.IsZero() {
		t.Errorf("promise = %s, %d attempts, connected %v; want kept, 0 attempts, a connect time", got.State, got.Attempts, got.ConnectedAt)
	}
	// The 90-second conversation outlasts the 30-second lease: the callback renewed it and
	// settled the promise itself, rather than a reclaim finding it expired.
	for _, h := range got.History {
		if strings.Contains(h.Detail, "lease expired") {
			t.Errorf("the lease ran out during the call: %+v", h)
		}
	}
	want := []string{"anna agent rung", "anna whisper", "anna customer dialled", "anna customer answered",
		"anna settled kept answered/answered"}
	if steps := r.steps(job.ID); !slices.Equal(steps, want) {
		t.Errorf("steps = %q\nwant    %q", steps, want)
	}
	if n := len(r.requested("POST /ari/channels/create")); n != 1 {
		t.Errorf("customer legs created = %d, want 1", n)
	}
	if n := len(r.requested("POST /ari/bridges/cbd-", "/addChannel")); n != 2 {
		t.Errorf("bridge additions = %d, want 2 (agent, then customer before dialling)", n)
	}
	if n := len(r.requested("DELETE /ari/bridges/cbd-")); n != 1 {
		t.Errorf("bridge destroyed %d times, want once", n)
	}
	r.waitFor("every callback channel to be gone", func() bool { return len(r.pbx.Channels()) == 0 })
	r.waitFor("anna in wrap-up after the call", func() bool { return r.pool.Agents()[1].State == AgentWrapUp })
	if n := r.control.Watching(); n != 0 {
		t.Errorf("the control router still routes %d channels of a finished callback", n)
	}
	// The call took about two minutes with wrap-up: the at-risk forecast's estimate moves
	// from its 5-minute guess towards that.
	if h := r.disp.HandleTime(); h >= initialHandle || h <= 4*time.Minute {
		t.Errorf("handle time after one ~2-minute callback = %v, want between 4m and 5m (a fifth of the way)", h)
	}
}

func TestAgentWhoDoesNotAnswerCoolsDownAndAnotherAgentKeepsThePromiseWithoutUsingAnAttempt(t *testing.T) {
	r := newRig(t, monday10, func(c *config.Config) {
		c.Dialer.AgentCooldown = config.Duration(time.Hour) // still cooling down when the test looks
	}, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Rings())
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	job := r.enqueue(customer1, "voicemail", "1003", 2*time.Hour)
	got := r.settled(job.ID)

	if got.State != queue.StateKept || got.Attempts != 0 {
		t.Errorf("promise = %s with %d attempts; want kept with 0 (an agent's no-answer is not the customer's attempt)", got.State, got.Attempts)
	}
	steps := r.steps(job.ID)
	if len(steps) < 3 || steps[0] != "anna agent rung" || steps[1] != "anna settled pending no_answer/" {
		t.Errorf("the owner should be rung first and give the promise back unanswered; steps %q", steps)
	}
	if !slices.Contains(steps, "bob settled kept answered/answered") {
		t.Errorf("bob should have kept the promise; steps %q", steps)
	}
	if st := r.pool.Agents()[1].State; st != AgentCooldown {
		t.Errorf("anna is %s, want %s", st, AgentCooldown)
	}
}

func TestBusyCustomerIsRetriedWithBackoffThenUnreachable(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
		s.SetEndpoint(customerPhone(customer1), aritest.Busy(3*time.Second))
	})
	job := r.enqueue(customer1, "voicemail", "1003", 2*time.Hour)
	got := r.settled(job.ID)

	if got.State != queue.StateUnreachable || got.Attempts != 3 {
		t.Errorf("promise = %s after %d attempts, want unreachable after 3", got.State, got.Attempts)
	}
	if n := len(r.requested("POST /ari/channels/create")); n != 3 {
		t.Errorf("customer dialled %d times, want exactly max_attempts (3)", n)
	}
	if n := len(r.requested("-agent/play", "media=sound%3Acallbackd-customer-busy")); n != 3 {
		t.Errorf("the agent was told the customer is busy %d times, want after each of the 3 attempts", n)
	}
	var retries []time.Time
	for _, p := range r.allProgress() {
		if p.Step == StepSettled && p.CustomerResult != ResultBusy {
			t.Errorf("customer result %q, want busy (17/486)", p.CustomerResult)
		}
		if p.Step == StepAgentRung {
			retries = append(retries, p.At)
		}
	}
	for i := 1; i < len(retries); i++ {
		if gap := retries[i].Sub(retries[i-1]); gap < 5*time.Minute {
			t.Errorf("attempt %d came %v after the previous one, before retry_backoff (5m)", i+1, gap)
		}
	}
}

func TestNumberOutsideTheAllowListIsNeverDialled(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
	})
	job := r.enqueue("+3227654321", "voicemail", "1003", 2*time.Hour)
	got := r.settled(job.ID)

	if got.State != queue.StateFailed || !strings.Contains(got.History[len(got.History)-1].Detail, "dialer.allow") {
		t.Errorf("promise = %s (%v), want failed naming dialer.allow", got.State, got.History)
	}
	if reqs := r.requested("POST /ari/channels"); len(reqs) != 0 {
		t.Errorf("nobody may be rung for a number outside the allow-list; requests %q", reqs)
	}
}

func TestEarliestDeadlineIsCalledBackFirst(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
		s.SetEndpoint(customerPhone(customer1), talks())
		s.SetEndpoint(customerPhone(customer2), talks())
	})
	// Bob is offline while both promises are made, so neither is taken before the other exists.
	r.pbx.SetEndpoint("PJSIP/1002", aritest.Unavailable())
	r.waitFor("bob offline", func() bool { return r.pool.Agents()[0].State == AgentOffline })
	later := r.enqueue(customer1, "voicemail", "1005", 2*time.Hour)
	sooner := r.enqueue(customer2, "unanswered_transfer", "1005", time.Hour)
	r.pbx.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))

	a, b := r.settled(sooner.ID), r.settled(later.ID)
	if a.State != queue.StateKept || b.State != queue.StateKept {
		t.Fatalf("states %s, %s; want both kept", a.State, b.State)
	}
	if !a.ConnectedAt.Before(b.ConnectedAt) {
		t.Errorf("the 1h promise connected at %v, after the 2h one at %v", a.ConnectedAt, b.ConnectedAt)
	}
}

func TestNoCustomerIsDialledOutsideCallingHours(t *testing.T) {
	early := time.Date(2026, 11, 23, 8, 29, 0, 0, mustLoc("Europe/Amsterdam"))
	r := newRig(t, early, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	job := r.enqueue(customer1, "voicemail", "1003", 2*time.Hour)
	got := r.settled(job.ID)
	if got.ConnectedAt.Before(time.Date(2026, 11, 23, 8, 30, 0, 0, mustLoc("Europe/Amsterdam"))) {
		t.Errorf("customer connected at %v, before calling hours opened at 08:30", got.ConnectedAt.In(mustLoc("Europe/Amsterdam")))
	}
	for _, p := range r.allProgress() {
		if p.Step == StepAgentRung && !config.DefaultQueue().CallingHours.Open(p.At) {
			t.Errorf("agent rung at %v, outside calling hours", p.At)
		}
	}
}

func TestPromiseResolvedWhileTheCustomerRingsStopsTheCallback(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
		s.SetEndpoint(customerPhone(customer1), aritest.Rings())
	})
	job := r.enqueue(customer1, "voicemail", "1003", 2*time.Hour)
	r.waitFor("the customer to be dialled", func() bool { return len(r.steps(job.ID)) >= 3 })
	// The customer calls in and reaches the target: the promise is resolved under the callback.
	if _, err := r.store.Resolve(context.Background(), "support", customer1, "reached 1003"); err != nil {
		t.Fatal(err)
	}
	got := r.settled(job.ID)
	if got.State != queue.StateResolved {
		t.Errorf("promise = %s, want resolved", got.State)
	}
	r.waitFor("the callback to hang up both legs", func() bool { return len(r.pbx.Channels()) == 0 && r.disp.Active() == 0 })
	if n := len(r.requested("POST /ari/channels/create")); n != 1 {
		t.Errorf("customer dialled %d times after the promise was resolved, want only the one call", n)
	}
}

func TestCustomerWhoAnswersWhileTheEventSocketIsDownIsStillConnected(t *testing.T) {
	r := newRig(t, monday10, func(c *config.Config) {
		// The socket stays down for 10 s: long enough for the customer to answer unseen.
		c.Asterisk[0].Reconnect.Initial = config.Duration(10 * time.Second)
		c.Asterisk[0].Reconnect.Max = config.Duration(30 * time.Second)
	}, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	job := r.enqueue(customer1, "voicemail", "1003", 2*time.Hour)
	r.waitFor("the customer to be dialled", func() bool { return len(r.steps(job.ID)) >= 3 })
	r.pbx.DropWebSockets()
	got := r.settled(job.ID)
	if got.State != queue.StateKept || got.Attempts != 0 {
		t.Errorf("promise = %s with %d attempts; want kept: the resync shows the customer's leg Up", got.State, got.Attempts)
	}
}

func TestAnAgentReservedByAnotherDaemonIsNeverRung(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
		s.SetEndpoint(customerPhone(customer2), talks())
	})
	// Another callbackd sharing this Redis is calling with Bob.
	other := queue.NewReservations(r.redis.Client(), "callbackd")
	if ok, err := other.Reserve(context.Background(), "bob", "other-daemon", time.Hour); !ok || err != nil {
		t.Fatalf("reserving bob for the other daemon: %v %v", ok, err)
	}
	first := r.enqueue(customer1, "voicemail", "1005", 2*time.Hour)
	second := r.enqueue(customer2, "voicemail", "1005", 2*time.Hour)
	for _, id := range []string{first.ID, second.ID} {
		if got := r.settled(id); got.State != queue.StateKept {
			t.Errorf("promise %s = %s, want kept by anna", id, got.State)
		}
	}
	for _, p := range r.allProgress() {
		if p.Agent == "bob" {
			t.Fatalf("bob was rung (%s) while another daemon held him", p.Step)
		}
	}
}

func TestPromiseMadeByAnotherDaemonIsCalledBackWithoutWaitingForTheRescan(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	r.waitFor("bob free", func() bool { return len(r.pool.Free()) == 1 })
	// Another daemon's intake stores the promise: nothing in this process calls Wake.
	made := r.clk.Now()
	job, _, err := r.store.Enqueue(context.Background(), queue.Request{Queue: "support", Number: customer1,
		Reason: queue.ReasonVoicemail, Target: "1005", Deadline: made.Add(2 * time.Hour), NotBefore: made, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor("bob to be rung", func() bool { _, ok := r.stepAt(job.ID, StepAgentRung); return ok })
	rung, _ := r.stepAt(job.ID, StepAgentRung)
	// Simulated time: far below the 2-minute rescan, far above scheduling noise.
	if waited := rung.Sub(made); waited > time.Minute {
		t.Errorf("bob was rung %v after the promise was made elsewhere; the Redis wake-up should have woken the dispatcher", waited)
	}
	r.drainOnCleanup()
}

// Redis going away and coming back (an AOF restart) stops nothing for good: the dispatcher
// retries, its wake-up subscription reconnects, and a promise made afterwards is kept.
func TestDispatchGoesOnAfterARedisRestart(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	r.waitFor("bob free", func() bool { return len(r.pool.Free()) == 1 })
	r.redis.Stop()
	r.disp.Wake() // a pass against a Redis that is not there
	time.Sleep(50 * time.Millisecond)
	r.redis.Restart() // an empty Redis: the scripts come back by themselves (EVALSHA falls back to EVAL)
	job := r.enqueue(customer1, "voicemail", "1005", 2*time.Hour)
	if got := r.settled(job.ID); got.State != queue.StateKept {
		t.Errorf("promise made after the restart = %s, want kept", got.State)
	}
}

// With a confirm digit, only a customer who presses it is connected: an answering machine that
// picks up never makes a promise kept.
func TestConfirmDigitKeepsAnAnsweringMachineFromCountingAsKept(t *testing.T) {
	pressing := aritest.AnswersAndPresses(4*time.Second, "1")
	pressing.HangupAfter = 90 * time.Second
	for _, tc := range []struct {
		name      string
		customer  aritest.Behavior
		want      queue.State
		wantLegs  int
		wantCause string
	}{
		{"a person presses 1", pressing, queue.StateKept, 1, ResultAnswered},
		{"an answering machine takes the call", aritest.Voicemail(4*time.Second, time.Minute), queue.StateUnreachable, 3, ResultNoConfirmation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, monday10, func(c *config.Config) {
				c.Queues[0].Greeting = []string{"sound:callbackd-hello"}
				c.Queues[0].ConfirmDigit = "1"
				c.Queues[0].ConfirmTimeout = config.Duration(10 * time.Second)
			}, func(s *aritest.Server) {
				s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
				s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
				s.SetEndpoint(customerPhone(customer1), tc.customer)
			})
			job := r.enqueue(customer1, "voicemail", "1005", 2*time.Hour)
			got := r.settled(job.ID)
			if got.State != tc.want || !got.ConnectedAt.IsZero() != (tc.want == queue.StateKept) {
				t.Errorf("promise = %s (connected at %v), want %s", got.State, got.ConnectedAt, tc.want)
			}
			if n := len(r.requested("POST /ari/channels/create")); n != tc.wantLegs {
				t.Errorf("customer legs = %d, want %d", n, tc.wantLegs)
			}
			if n := len(r.requested("/play", "media=sound%3Acallbackd-hello")); n != tc.wantLegs {
				t.Errorf("greetings played = %d, want one per answered leg (%d)", n, tc.wantLegs)
			}
			for _, p := range r.allProgress() {
				if p.Step == StepSettled && p.CustomerResult != tc.wantCause {
					t.Errorf("customer result %q, want %q", p.CustomerResult, tc.wantCause)
				}
			}
		})
	}
}

// When the agent hangs up first, callbackd hangs up the customer and destroys the bridge: ARI
// bridges do not do that themselves.
func TestAgentHangingUpFirstEndsTheCustomerLegAndTheBridge(t *testing.T) {
	agent := aritest.Answers(2 * time.Second)
	agent.HangupAfter = time.Minute
	long := aritest.Answers(4 * time.Second)
	long.HangupAfter = time.Hour
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", agent)
		s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
		s.SetEndpoint(customerPhone(customer1), long)
	})
	job := r.enqueue(customer1, "voicemail", "1005", 2*time.Hour)
	if got := r.settled(job.ID); got.State != queue.StateKept {
		t.Errorf("promise = %s, want kept", got.State)
	}
	r.waitFor("the customer leg to be hung up", func() bool { return len(r.pbx.Channels()) == 0 })
	if n := len(r.requested("DELETE /ari/channels/cbd-", "-customer")); n != 1 {
		t.Errorf("customer leg hung up %d times by callbackd, want once", n)
	}
	if n := len(r.requested("DELETE /ari/bridges/cbd-")); n != 1 || len(r.pbx.Bridges()) != 0 {
		t.Errorf("bridge destroyed %d times, %d bridges left; want once, none", n, len(r.pbx.Bridges()))
	}
}

// The dispatcher sleeps until exactly when the next look is due, so a delayed promise is
// claimed as it becomes due; it slows down only when pass after pass asks to look again at once.
func TestDispatcherWaitsExactlyUntilTheNextLookIsDue(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rescan := 2 * time.Minute
	for _, tc := range []struct {
		name      string
		next      time.Time
		again     int
		wantWait  time.Duration
		wantAgain int
	}{
		{"a promise due in 3 ms is waited for 3 ms", now.Add(3 * time.Millisecond), 0, 3 * time.Millisecond, 0},
		{"a promise due in 1 µs is waited for 1 µs", now.Add(time.Microsecond), 1, time.Microsecond, 0},
		{"nothing due: the rescan", time.Time{}, 0, rescan, 0},
		{"due after the rescan: the rescan", now.Add(time.Hour), 0, rescan, 0},
		{"due now: look again at once", now, 0, 0, 1},
		{"already due: look again at once", now.Add(-time.Second), 0, 0, 1},
		{"due now again right after: slowed down", now, 1, spinWait, 2},
		{"still due now: still slowed down", now.Add(-time.Millisecond), 5, spinWait, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait, again := waitFor(tc.next, now, rescan, tc.again)
			if wait != tc.wantWait || again != tc.wantAgain {
				t.Errorf("waitFor = %v, %d; want %v, %d", wait, again, tc.wantWait, tc.wantAgain)
			}
		})
	}
}
