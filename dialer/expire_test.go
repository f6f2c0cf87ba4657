package dialer

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// The dispatcher's periodic pass ends promises open longer than max_open_age, counts them as
// completed expired (a broken promise in the kept ratio), and leaves a callback in progress be.
func TestPeriodicPassExpiresPromisesOpenTooLongAndCountsThem(t *testing.T) {
	clk := clock.NewFake(monday10)
	cfg, err := config.Parse([]byte(rigConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t, redistest.Options{})
	store, err := queue.New(srv.Client(), queue.Options{Clock: clk, Queues: []string{"support"},
		MaxOpenAge: map[string]time.Duration{"support": 3 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	policy := PolicyFrom(cfg)
	d, err := NewDispatcher(DispatcherOptions{Policy: policy, Store: store, Reservations: queue.NewReservations(srv.Client(), ""),
		Pool: NewPool(policy.Agents, clk, nil), Control: NewControl(), PBXs: rigPBXs{}, Metrics: NewMetrics(reg, policy.QueueNames()),
		Clock: clk, Instance: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var jobs []queue.Job
	for i, n := range []string{customer1, "+31201234599"} {
		j, _, err := store.Enqueue(ctx, queue.Request{Queue: "support", Number: n, Reason: queue.ReasonVoicemail,
			Deadline: clk.Now().Add(time.Hour + time.Duration(i)*time.Minute), MaxAttempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	clk.Advance(3*time.Hour - time.Minute)
	// A callback for the first promise is under way, its lease renewed, when the age runs out.
	held, err := store.Claim(ctx, "support", queue.ClaimOptions{Worker: "test/bob", Lease: time.Hour})
	if err != nil || held.ID != jobs[0].ID {
		t.Fatalf("setup: claimed %v (%v), want %s", held, err, jobs[0].ID)
	}
	clk.Advance(2 * time.Minute)
	d.reclaim(ctx)

	for _, tc := range []struct {
		job  queue.Job
		want queue.State
	}{{jobs[0], queue.StateDialing}, {jobs[1], queue.StateExpired}} {
		if got, err := store.Get(ctx, tc.job.Ref()); err != nil || got.State != tc.want {
			t.Errorf("promise %s = %s (%v), want %s", tc.job.ID, got.State, err, tc.want)
		}
	}
	if n := counterValue(t, reg, "callbackd_promises_completed_total", "outcome", string(queue.StateExpired)); n != 1 {
		t.Errorf("callbackd_promises_completed_total{outcome=expired} = %v, want 1", n)
	}
}
