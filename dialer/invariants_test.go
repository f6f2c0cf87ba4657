package dialer

// Invariants of design §Reliability that a review of the dialer found broken, one test each:
// calling hours hold up to the customer's dial, no due promise waits for the rescan, every
// finished promise is counted, and max_attempts holds across a restart.

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// stepAt is when the first step of promise id happened; false when it has not happened.
func (r *rig) stepAt(id, step string) (time.Time, bool) {
	for _, p := range r.allProgress() {
		if p.Job.ID == id && p.Step == step {
			return p.At, true
		}
	}
	return time.Time{}, false
}

// drainOnCleanup lets every callback end, on the running fake clock, before the rig stops that
// clock: a dispatcher stopped with a call in progress waits out its grace on the clock.
func (r *rig) drainOnCleanup() {
	r.t.Cleanup(func() {
		deadline := time.Now().Add(30 * time.Second)
		for r.disp.Active() > 0 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	})
}

func TestCustomerIsNotDialledWhenCallingHoursCloseWhileTheAgentIsRungAndWhispered(t *testing.T) {
	// Claimed in the last half minute before 17:30; ringing the agent and the whisper take
	// longer than that, so the customer leg would start after closing time.
	beforeClosing := time.Date(2026, 11, 23, 17, 29, 30, 0, mustLoc("Europe/Amsterdam"))
	r := newRig(t, beforeClosing, func(c *config.Config) {
		c.Dialer.Whisper = []string{"sound:callbackd-callback-for", "digits:{number}", "digits:{number}",
			"digits:{number}", "digits:{number}"}
	}, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(10*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	hours := r.cfg.Queues[0].CallingHours
	job := r.enqueue(customer1, "voicemail", "1005", 2*time.Hour)
	r.waitFor("the first callback to end", func() bool {
		_, ok := r.stepAt(job.ID, StepSettled)
		return ok
	})
	rung, _ := r.stepAt(job.ID, StepAgentRung)
	if !hours.Open(rung) {
		t.Fatalf("setup: the agent was rung at %v, already after closing; the rig started too slowly", rung)
	}
	if at, ok := r.stepAt(job.ID, StepCustomerDialled); ok && !hours.Open(at) {
		t.Errorf("customer dialled at %v, after calling hours closed at 17:30 (agent rung at %v while open)",
			at.In(mustLoc("Europe/Amsterdam")).Format("15:04:05"), rung.In(mustLoc("Europe/Amsterdam")).Format("15:04:05"))
	}
}

func TestDelayedPromiseIsRungWhenItBecomesDueEvenIfAnotherAgentJustTookTheLastDueOne(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		long := aritest.Answers(4 * time.Second)
		long.HangupAfter = 2 * time.Minute // keeps the first agent busy, so no callback end wakes the dispatcher
		s.SetEndpoint(customerPhone(customer1), long)
		s.SetEndpoint(customerPhone(customer2), talks())
	})
	r.drainOnCleanup()
	r.waitFor("both agents free", func() bool { return len(r.pool.Free()) == 2 })
	// A promise that may be dialled only in a few seconds (a retry backoff, an offer's slot),
	// made as the intake makes it: enqueue, then wake the dispatcher.
	now := r.clk.Now()
	delayed, _, err := r.store.Enqueue(context.Background(), queue.Request{Queue: "support", Number: customer2,
		Reason: queue.ReasonVoicemail, Target: "1005", Deadline: now.Add(2 * time.Hour), NotBefore: now.Add(5 * time.Second), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	r.disp.Wake()
	// Lets that look end, so the next wake-up is a pass of its own (the wall-clock pause only
	// orders the two promises; nothing is asserted about it).
	time.Sleep(20 * time.Millisecond)
	if !r.clk.Now().Before(delayed.NotBefore) {
		t.Fatalf("setup: the delayed promise became due before the second one was made")
	}
	// Then a promise due now: one agent takes it, the other stays free for the delayed one.
	first := r.enqueue(customer1, "voicemail", "1005", 2*time.Hour)
	r.waitFor("the due promise to be taken", func() bool { _, ok := r.stepAt(first.ID, StepAgentRung); return ok })

	var rung time.Time
	r.waitFor("the delayed promise to be rung", func() bool {
		var ok bool
		rung, ok = r.stepAt(delayed.ID, StepAgentRung)
		return ok
	})
	// Simulated time; the bound is far below the 30 s rescan the defect waited for and far
	// above what a busy machine's scheduling delays add.
	if late := rung.Sub(delayed.NotBefore); late > 15*time.Second {
		t.Errorf("a free agent was rung for the delayed promise %v after it became due; want at once "+
			"(the dispatcher slept until its rescan/reclaim timer instead)", late)
	}
}

func TestPromiseFinishedByReclaimAfterItsCustomerWasConnectedIsCountedAsKept(t *testing.T) {
	clk := clock.NewFake(monday10)
	cfg, err := config.Parse([]byte(rigConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t, redistest.Options{})
	store, err := queue.New(srv.Client(), queue.Options{Clock: clk, Queues: []string{"support"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Load(ctx); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	policy := PolicyFrom(cfg)
	m := NewMetrics(reg, policy.QueueNames())
	d, err := NewDispatcher(DispatcherOptions{Policy: policy, Store: store, Reservations: queue.NewReservations(srv.Client(), ""),
		Pool: NewPool(policy.Agents, clk, nil), Control: NewControl(), PBXs: rigPBXs{}, Metrics: m, Clock: clk, Instance: "test"})
	if err != nil {
		t.Fatal(err)
	}
	// A daemon claimed the promise, connected the customer and died before settling it.
	if _, _, err := store.Enqueue(ctx, queue.Request{Queue: "support", Number: customer1, Reason: queue.ReasonVoicemail,
		Deadline: clk.Now().Add(time.Hour), MaxAttempts: 3}); err != nil {
		t.Fatal(err)
	}
	job, err := store.Claim(ctx, "support", queue.ClaimOptions{Worker: "dead/bob", Lease: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.MarkConnected(ctx, job.Ref(), job.Lease.Token, clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	d.reclaim(ctx)

	got, err := store.Get(ctx, job.Ref())
	if err != nil || got.State != queue.StateKept {
		t.Fatalf("setup: reclaimed promise = %s (%v), want kept", got.State, err)
	}
	if n := counterValue(t, reg, "callbackd_promises_completed_total", "outcome", string(queue.StateKept)); n != 1 {
		t.Errorf("callbackd_promises_completed_total{outcome=kept} = %v after this daemon finished the promise as kept, want 1", n)
	}
}

// counterValue reads the counter name whose label has value, from what reg exports.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q} exported", name, label, value)
	return 0
}

func TestCustomerIsNeverDialledMoreThanMaxAttemptsAcrossADaemonRestart(t *testing.T) {
	r := newRig(t, monday10, func(c *config.Config) {
		c.Dialer.ShutdownGrace = config.Duration(time.Second)
	}, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Unavailable())
		s.SetEndpoint(customerPhone(customer1), aritest.Rings())
	})
	r.drainOnCleanup()
	r.waitFor("bob free", func() bool { return len(r.pool.Free()) == 1 })
	// A second daemon on the same pool and Redis: it makes the first call and is stopped
	// (SIGTERM) while the customer's phone rings; the rig's dispatcher is the one after it.
	var dialledBy2 bool
	stopped := make(chan struct{})
	d2, err := NewDispatcher(DispatcherOptions{Policy: PolicyFrom(r.cfg), Store: r.store,
		Reservations: queue.NewReservations(r.redis.Client(), "callbackd"), Pool: r.pool, Control: r.control,
		PBXs: rigPBXs{conn: r.conn}, Clock: r.clk, Instance: "second", OnProgress: func(p Progress) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.progress = append(r.progress, p)
			if p.Step == StepCustomerDialled {
				dialledBy2 = true
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { defer close(stopped); _ = d2.Run(ctx) }()
	now := r.clk.Now()
	job, _, err := r.store.Enqueue(context.Background(), queue.Request{Queue: "support", Number: customer1,
		Reason: queue.ReasonVoicemail, Target: "1005", Deadline: now.Add(2 * time.Hour), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	d2.Wake()
	r.waitFor("the customer to be dialled", func() bool { _, ok := r.stepAt(job.ID, StepCustomerDialled); return ok })
	r.mu.Lock()
	by2 := dialledBy2
	r.mu.Unlock()
	if !by2 {
		cancel()
		<-stopped
		t.Skip("setup: the rig's dispatcher took the promise first")
	}
	cancel()
	<-stopped

	got := r.settled(job.ID)
	if n := len(r.requested("POST /ari/channels/create")); n > got.MaxAttempts {
		t.Errorf("customer dialled %d times for a promise of max_attempts %d (now %s after %d counted attempts)",
			n, got.MaxAttempts, got.State, got.Attempts)
	}
}
