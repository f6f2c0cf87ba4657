package dialer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// countingStore is the real store, counting the calls a scrape makes.
type countingStore struct {
	StoreReader
	calls atomic.Int64
}

func (s *countingStore) Stats(ctx context.Context, q string) (queue.Stats, error) {
	s.calls.Add(1)
	return s.StoreReader.Stats(ctx, q)
}

func (s *countingStore) Outcomes(ctx context.Context, q string, window time.Duration) (map[queue.State]int64, error) {
	s.calls.Add(1)
	return s.StoreReader.Outcomes(ctx, q, window)
}

func (s *countingStore) Schedule(ctx context.Context, q string, limit int) ([]queue.Due, int, error) {
	s.calls.Add(1)
	return s.StoreReader.Schedule(ctx, q, limit)
}

// With Redis down a scrape gives up after the first call that finds it unreachable, instead
// of waiting out every queue's three calls: /metrics answers in the time of one failed call.
func TestAScrapeWithRedisDownStopsAtTheFirstConnectionError(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	queues := []string{"a", "b", "c", "d"}
	store, err := queue.New(srv.Client(), queue.Options{Clock: clock.NewFake(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)), Queues: queues})
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingStore{StoreReader: store}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, queues)
	m.RegisterStateCollector(reg, Policy{Queues: policyQueues(queues), KeptRatioWindow: time.Hour}, counting, nil,
		func(string) time.Duration { return time.Minute }, zap.NewNop())

	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if got, want := counting.calls.Load(), int64(3*len(queues)); got != want {
		t.Fatalf("a scrape with Redis up made %d store calls, want %d (three per queue)", got, want)
	}
	srv.Stop()
	counting.calls.Store(0)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if got := counting.calls.Load(); got != 1 {
		t.Errorf("a scrape with Redis down made %d store calls, want 1", got)
	}
	var pb dto.Metric
	if err := m.storeErrors.Write(&pb); err != nil {
		t.Fatal(err)
	}
	if got := pb.GetCounter().GetValue(); got != 1 {
		t.Errorf("callbackd_store_scrape_errors_total = %v, want 1", got)
	}
}

func policyQueues(names []string) []QueuePolicy {
	out := make([]QueuePolicy, len(names))
	for i, n := range names {
		out[i] = QueuePolicy{Name: n}
	}
	return out
}
