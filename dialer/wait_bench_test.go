package dialer

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// BenchmarkDelayedPromiseLateness is how late a delayed promise is claimed when the dispatcher
// sleeps by waitFor between looks (NextDue, then Claim), on the real clock against a real
// Redis: each promise becomes due 0-20 ms after it is made. "floor10ms" is the wait the
// dispatcher had before (at least 10 ms), for comparison. Reported: p50-ms and p99-ms late.
func BenchmarkDelayedPromiseLateness(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	clk := clock.Real{}
	store, err := queue.New(srv.Client(), queue.Options{Clock: clk, Queues: []string{"support"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	policies := map[string]func(next, now time.Time, again int) (time.Duration, int){
		"exact": func(next, now time.Time, again int) (time.Duration, int) {
			return waitFor(next, now, time.Minute, again)
		},
		"floor10ms": func(next, now time.Time, _ int) (time.Duration, int) {
			return max(10*time.Millisecond, next.Sub(now)), 0
		},
	}
	for _, name := range []string{"exact", "floor10ms"} {
		wait := policies[name]
		b.Run(name, func(b *testing.B) {
			late := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				now := clk.Now()
				nb := now.Add(time.Duration(i%21) * time.Millisecond)
				if _, _, err := store.Enqueue(ctx, queue.Request{Queue: "support", Number: fmt.Sprintf("+3120%07d", i),
					Reason: queue.ReasonAPI, Deadline: now.Add(time.Hour), NotBefore: nb, MaxAttempts: 1}); err != nil {
					b.Fatal(err)
				}
				again := 0
				for {
					j, err := store.Claim(ctx, "support", queue.ClaimOptions{Worker: "w", Lease: time.Minute})
					if err == nil {
						late = append(late, clk.Now().Sub(j.NotBefore))
						if _, err := store.Complete(ctx, j.Ref(), j.Lease.Token, queue.StateCancelled, ""); err != nil {
							b.Fatal(err)
						}
						break
					}
					next, _, err := store.NextDue(ctx, "support")
					if err != nil {
						b.Fatal(err)
					}
					var d time.Duration
					d, again = wait(next, clk.Now(), again)
					<-clk.After(d)
				}
			}
			b.StopTimer()
			sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
			b.ReportMetric(float64(late[len(late)/2])/1e6, "p50-ms")
			b.ReportMetric(float64(late[len(late)*99/100])/1e6, "p99-ms")
		})
	}
}
