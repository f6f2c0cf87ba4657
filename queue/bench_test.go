package queue

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
)

// numbers hands out distinct valid customer numbers across a benchmark's runs.
type numbers struct{ n atomic.Int64 }

func (g *numbers) next() string { return fmt.Sprintf("+31%09d", 100000000+g.n.Add(1)) }

func benchRequest(num string, i int64) Request {
	r := request(num)
	// Spread deadlines so the ready set really is ordered, all far enough to stay valid.
	r.Deadline = t0.Add(time.Hour + time.Duration(i%100000)*time.Second)
	return r
}

// fill enqueues n promises with 16 concurrent clients, so large queues build quickly.
func fill(b *testing.B, f fixture, g *numbers, n int) {
	b.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if _, _, err := f.s.Enqueue(f.ctx, benchRequest(g.next(), i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// redisTime reports the Redis server's own time per operation, read from INFO commandstats:
// unlike ns/op it does not include the network and the client, so it stays comparable on a
// busy machine. Call resetRedisTime where the timed part starts.
func redisTime(b *testing.B, f fixture) {
	b.Helper()
	info, err := f.rdb.Info(f.ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var usec float64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		for _, field := range strings.Split(strings.TrimSpace(line[strings.Index(line, ":")+1:]), ",") {
			if v, ok := strings.CutPrefix(field, "usec="); ok {
				n, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatalf("parsing commandstats %q: %v", line, err)
				}
				usec += n
			}
		}
	}
	b.ReportMetric(usec/float64(b.N), "redis-us/op")
}

func resetRedisTime(b *testing.B, f fixture) {
	b.Helper()
	if err := f.rdb.ConfigResetStat(f.ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
}

func loaded(b *testing.B) fixture {
	b.Helper()
	f := newFixture(b)
	if err := f.s.Load(f.ctx); err != nil {
		b.Fatal(err)
	}
	return f
}

func BenchmarkEnqueue(b *testing.B) {
	f := loaded(b)
	var g numbers
	resetRedisTime(b, f)
	for i := 0; i < b.N; i++ {
		if _, _, err := f.s.Enqueue(f.ctx, benchRequest(g.next(), int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	redisTime(b, f)
}

func BenchmarkClaim(b *testing.B) {
	f := loaded(b)
	var g numbers
	fill(b, f, &g, b.N)
	resetRedisTime(b, f)
	for i := 0; i < b.N; i++ {
		if _, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w", Lease: time.Minute}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	redisTime(b, f)
}

func BenchmarkComplete(b *testing.B) {
	f := loaded(b)
	var g numbers
	fill(b, f, &g, b.N)
	claimed := make([]*Job, b.N)
	for i := range claimed {
		j, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w", Lease: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		claimed[i] = j
	}
	resetRedisTime(b, f)
	for _, j := range claimed {
		if _, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateUnreachable, "no answer"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	redisTime(b, f)
}

// BenchmarkLifetime runs whole promises (enqueue → claim → complete) and reports the Redis
// round trips each one took.
func BenchmarkLifetime(b *testing.B) {
	f := loaded(b)
	counter := &roundTrips{}
	f.rdb.AddHook(counter)
	var g numbers
	resetRedisTime(b, f)
	counter.n = 0
	for i := 0; i < b.N; i++ {
		if _, _, err := f.s.Enqueue(f.ctx, benchRequest(g.next(), int64(i))); err != nil {
			b.Fatal(err)
		}
		j, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w", Lease: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateUnreachable, "no answer"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(counter.n)/float64(b.N), "roundtrips/job")
	redisTime(b, f)
}

// BenchmarkClaimQueueSize claims from a queue holding at least size open promises: the cost
// must not grow with the queue, because Claim reads the head of a sorted set and nothing else.
func BenchmarkClaimQueueSize(b *testing.B) {
	for _, size := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("open=%d", size), func(b *testing.B) {
			f := loaded(b)
			var g numbers
			fill(b, f, &g, size+b.N)
			resetRedisTime(b, f)
			for i := 0; i < b.N; i++ {
				if _, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w", Lease: time.Minute}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			redisTime(b, f)
			st, err := f.s.Stats(f.ctx, testQueue)
			if err != nil || st.Ready < int64(size) {
				b.Fatalf("queue held %d ready jobs (%v), want at least %d", st.Ready, err, size)
			}
		})
	}
}

// BenchmarkOutcomes reads a day of outcomes (289 five-minute buckets, one pipelined round trip)
// from a queue where promises finished throughout that day.
func BenchmarkOutcomes(b *testing.B) {
	f := loaded(b)
	var g numbers
	for i := 0; i < 24*60/5; i++ {
		for n := 0; n < 4; n++ {
			r := request(g.next())
			r.Deadline = f.clk.Now().Add(time.Hour)
			j, _, err := f.s.Enqueue(f.ctx, r)
			if err != nil {
				b.Fatal(err)
			}
			// Two outcomes per bucket, so each HGETALL returns more than one field.
			if n%2 == 0 {
				_, err = f.s.Cancel(f.ctx, j.Ref(), "")
			} else {
				_, err = f.s.Resolve(f.ctx, testQueue, j.Number, "")
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		f.clk.Advance(5 * time.Minute)
	}
	resetRedisTime(b, f)
	for i := 0; i < b.N; i++ {
		got, err := f.s.Outcomes(f.ctx, testQueue, 24*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		if got[StateCancelled] == 0 {
			b.Fatalf("Outcomes = %v, want the day's cancellations", got)
		}
	}
	b.StopTimer()
	redisTime(b, f)
}

// BenchmarkReserveRelease is one agent reserved and released again: the dialer's cost of
// taking an agent, twice per call offered.
func BenchmarkReserveRelease(b *testing.B) {
	f := loaded(b)
	r := NewReservations(f.rdb, "bench")
	if ok, err := r.Reserve(f.ctx, "1003", "d1", time.Minute); err != nil || !ok {
		b.Fatal(ok, err) // also loads the release script below, outside the timed part
	}
	if _, err := r.Release(f.ctx, "1003", "d1"); err != nil {
		b.Fatal(err)
	}
	resetRedisTime(b, f)
	for i := 0; i < b.N; i++ {
		ok, err := r.Reserve(f.ctx, "1003", "d1", time.Minute)
		if err != nil || !ok {
			b.Fatalf("Reserve = %v, %v", ok, err)
		}
		if ok, err := r.Release(f.ctx, "1003", "d1"); err != nil || !ok {
			b.Fatalf("Release = %v, %v", ok, err)
		}
	}
	b.StopTimer()
	redisTime(b, f)
}

// BenchmarkEnqueueWait is what waiting for a replica (Options.WaitReplicas) costs a promise,
// against a real primary and its replica: the same Enqueue without WAIT, with WAIT 1, one
// caller at a time (the latency a promise sees) and 16 at once (the throughput).
func BenchmarkEnqueueWait(b *testing.B) {
	primary := redistest.Start(b, redistest.Options{})
	redistest.Start(b, redistest.Options{ReplicaOf: primary.Addr()})
	rdb := primary.Client()
	for _, replicas := range []int{0, 1} {
		s, err := New(rdb, Options{Clock: clock.NewFake(t0), Queues: []string{testQueue}, WaitReplicas: replicas,
			OnUnreplicated: func(u Unreplicated) { b.Errorf("the replica did not acknowledge: %+v", u) }})
		if err != nil {
			b.Fatal(err)
		}
		f := fixture{s: s, rdb: rdb, ctx: context.Background()}
		if err := s.Load(f.ctx); err != nil {
			b.Fatal(err)
		}
		var g numbers
		// Each run starts from an empty store, so neither setting pays for a queue the other
		// filled (FLUSHALL reaches the replica too, and keeps the scripts).
		empty := func(b *testing.B) {
			if err := rdb.FlushAll(f.ctx).Err(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
		}
		b.Run(fmt.Sprintf("wait=%d/serial", replicas), func(b *testing.B) {
			empty(b)
			for i := 0; i < b.N; i++ {
				if _, _, err := s.Enqueue(f.ctx, benchRequest(g.next(), int64(i))); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("wait=%d/parallel16", replicas), func(b *testing.B) {
			empty(b)
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
			var i atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := s.Enqueue(f.ctx, benchRequest(g.next(), i.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
