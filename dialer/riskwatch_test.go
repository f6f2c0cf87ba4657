package dialer

import (
	"context"
	"strings"
	"testing"

	"github.com/callbackd/callbackd/queue"
)

// A promise nobody on the rota can keep is announced at risk once: not again at the next look,
// not by a second daemon watching the same store.
func TestAPromiseAtRiskIsAnnouncedOnce(t *testing.T) {
	var policy Policy
	f := newIntakeFixture(t, func(o *IntakeOptions) { policy = o.Policy })
	ctx := context.Background()
	start, err := f.store.EventsNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.in.Request(voicemailFor("+31201234502", "1003"))
	got := f.next(t)
	if got.Err != nil {
		t.Fatalf("refused: %v", got.Err)
	}
	// Nobody is on the rota (the pool is empty): every deadline will be missed.
	watch := func() *RiskWatch {
		return NewRiskWatch(RiskWatchOptions{Forecaster: NewForecaster(policy, f.store, NewPool(nil, f.clk, nil), nil),
			Store: f.store, Queues: f.store.Queues(), Clock: f.clk})
	}
	first, second := watch(), watch()
	for _, w := range []*RiskWatch{first, first, second} {
		for _, q := range f.store.Queues() {
			if err := w.Look(ctx, q); err != nil {
				t.Fatalf("Look(%s): %v", q, err)
			}
		}
	}
	evs, _, err := f.store.ReadEvents(ctx, start, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var risk []queue.Event
	for _, e := range evs {
		if e.Type == queue.EventAtRisk {
			risk = append(risk, e)
		}
	}
	if len(risk) != 1 || risk[0].Promise != got.Job.ID {
		t.Fatalf("at-risk events %+v, want one for %s", risk, got.Job.ID)
	}
	if risk[0].Data["deadline"] == "" {
		t.Errorf("at-risk event %+v names no deadline", risk[0])
	}
}

// With Redis down a look fails naming the queue and announces nothing; the next look after
// Redis is back announces the promise, once.
func TestARiskLookWithRedisDownFailsAndTheNextOneAnnounces(t *testing.T) {
	var policy Policy
	f := newIntakeFixture(t, func(o *IntakeOptions) { policy = o.Policy })
	ctx := context.Background()
	start, err := f.store.EventsNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.in.Request(voicemailFor("+31201234503", "1003"))
	if got := f.next(t); got.Err != nil {
		t.Fatalf("refused: %v", got.Err)
	}
	w := NewRiskWatch(RiskWatchOptions{Forecaster: NewForecaster(policy, f.store, NewPool(nil, f.clk, nil), nil),
		Store: f.store, Queues: f.store.Queues(), Clock: f.clk})
	if err := f.redis.Client().Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	f.redis.Stop()
	if err := w.Look(ctx, "support"); err == nil || !strings.Contains(err.Error(), "queue support") {
		t.Errorf("Look with Redis down = %v, want an error naming the queue", err)
	}
	f.redis.Restart()
	if err := w.Look(ctx, "support"); err != nil {
		t.Fatalf("Look after Redis came back: %v", err)
	}
	evs, _, err := f.store.ReadEvents(ctx, start, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == queue.EventAtRisk {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d at-risk events, want 1", n)
	}
}
