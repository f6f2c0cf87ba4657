package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// redisMeter measures what Redis does for a benchmark's operations: round trips (a command or
// a pipeline sent), the commands Redis ran (each command a script runs counts once; the EVALSHA
// around them does not), and Redis' own time, which unlike ns/op leaves out the network and the
// client, so it stays comparable on a busy machine.
//
// INFO commandstats counts a command a script runs under its own name and again inside the
// usec of the EVALSHA that ran it, so summing every line counts script time twice. The meter
// therefore takes the script commands' usec (which include their inner commands) plus, of any
// other command the client sent itself, the share of its usec that its own calls make up, and
// counts as commands every call but the script wrappers'.
type redisMeter struct {
	mu    sync.Mutex
	sent  map[string]int // top-level commands by commandstats name, pipelines opened up
	trips int
}

// scriptCommands are the wrappers whose usec already includes the commands inside them.
var scriptCommands = map[string]bool{"eval": true, "evalsha": true, "eval_ro": true, "evalsha_ro": true, "fcall": true, "fcall_ro": true}

func (m *redisMeter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (m *redisMeter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		m.note(cmd)
		return next(ctx, cmd)
	}
}
func (m *redisMeter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		m.note(cmds...)
		return next(ctx, cmds)
	}
}

// note counts one round trip carrying cmds.
func (m *redisMeter) note(cmds ...redis.Cmder) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.trips++
	for _, c := range cmds {
		m.sent[strings.ToLower(c.Name())]++
	}
}

// meter attaches a redisMeter to f's client; start it where the timed part begins.
func meter(f fixture) *redisMeter {
	m := &redisMeter{sent: map[string]int{}}
	f.rdb.AddHook(m)
	return m
}

// start resets Redis' statistics and the meter's counts, then the benchmark timer.
func (m *redisMeter) start(b *testing.B, f fixture) {
	b.Helper()
	if err := f.rdb.ConfigResetStat(f.ctx).Err(); err != nil {
		b.Fatal(err)
	}
	m.mu.Lock()
	m.sent, m.trips = map[string]int{}, 0
	m.mu.Unlock()
	b.ResetTimer()
}

// report stops the timer and reports per op (per lifetime in BenchmarkLifetime): roundtrips,
// redis-cmds and redis-us, from the commands sent since start.
func (m *redisMeter) report(b *testing.B, f fixture) {
	b.Helper()
	b.StopTimer()
	m.mu.Lock()
	sent, trips := m.sent, m.trips
	m.sent = map[string]int{}
	m.mu.Unlock()
	stats := commandStats(b, f)
	var usec, cmds float64
	for name, st := range stats {
		own := float64(sent[name])
		if name == "info" || name == "config|resetstat" || name == "hello" || strings.HasPrefix(name, "client|") {
			continue // the meter's own reads, a new connection's handshake
		}
		switch {
		case scriptCommands[name]:
			usec += st.usec
		case st.calls > 0:
			usec += st.usec * own / st.calls
			cmds += st.calls
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(trips)/n, "roundtrips/op")
	b.ReportMetric(cmds/n, "redis-cmds/op")
	b.ReportMetric(usec/n, "redis-us/op")
}

type commandStat struct{ calls, usec float64 }

// commandStats reads INFO commandstats: calls and usec by command name (cmdstat_<name>, with
// subcommands as name|sub).
func commandStats(b testing.TB, f fixture) map[string]commandStat {
	b.Helper()
	info, err := f.rdb.Info(f.ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]commandStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st commandStat
		for _, field := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(field, "=")
			if k != "calls" && k != "usec" {
				continue
			}
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("parsing commandstats %q: %v", line, err)
			}
			if k == "calls" {
				st.calls = x
			} else {
				st.usec = x
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return out
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
	m := meter(f)
	m.start(b, f)
	for i := 0; i < b.N; i++ {
		if _, _, err := f.s.Enqueue(f.ctx, benchRequest(g.next(), int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b, f)
}

func BenchmarkClaim(b *testing.B) {
	f := loaded(b)
	var g numbers
	fill(b, f, &g, b.N)
	m := meter(f)
	m.start(b, f)
	for i := 0; i < b.N; i++ {
		if _, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w", Lease: time.Minute}); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b, f)
}

// BenchmarkClaimPreferMiss claims for an agent none of the earliest due promises is for, with
// the other agents held: the dispatcher's usual claim when its agents are busy (ClaimOptions
// Prefer and Held), which must not read the jobs it passes over.
func BenchmarkClaimPreferMiss(b *testing.B) {
	f := loaded(b)
	var g numbers
	fill(b, f, &g, b.N+preferWindow)
	m := meter(f)
	m.start(b, f)
	for i := 0; i < b.N; i++ {
		if _, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w", Lease: time.Minute,
			Prefer: "999", PreferShare: 0.5, Held: []string{"202", "203"}}); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b, f)
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
	m := meter(f)
	m.start(b, f)
	for _, j := range claimed {
		if _, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateUnreachable, "no answer"); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b, f)
}

// lifetime runs one whole promise the way a callback that reaches its customer does: enqueue →
// claim → dialled → connected → complete (kept).
func lifetime(b *testing.B, f fixture, number string, i int64) {
	if _, _, err := f.s.Enqueue(f.ctx, benchRequest(number, i)); err != nil {
		b.Fatal(err)
	}
	j, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w", Lease: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.s.MarkDialled(f.ctx, j.Ref(), j.Lease.Token); err != nil {
		b.Fatal(err)
	}
	if _, err := f.s.MarkConnected(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now()); err != nil {
		b.Fatal(err)
	}
	if _, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateKept, "talked"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLifetime runs whole promises (see lifetime); its per-op figures are per lifetime:
// round trips (5, one per step), the commands Redis ran for them, Redis' time.
func BenchmarkLifetime(b *testing.B) {
	f := loaded(b)
	var g numbers
	m := meter(f)
	m.start(b, f)
	for i := 0; i < b.N; i++ {
		lifetime(b, f, g.next(), int64(i))
	}
	m.report(b, f)
}

// BenchmarkPromiseMemory reports what Redis holds per promise (MEMORY USAGE of every key the
// promise has to itself: its hash, and what else belongs to the one job), open (just made) and
// finished (after a whole lifetime, kept for the retention), and the hash's encoding: listpack
// is Redis' compact one, hashtable costs about three times as much.
func BenchmarkPromiseMemory(b *testing.B) {
	f := loaded(b)
	var g numbers
	k := f.s.ks(testQueue)
	usage := func(id string) float64 {
		var n int64
		for _, key := range jobKeys(k, id) {
			v, err := f.rdb.MemoryUsage(f.ctx, key, 0).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				b.Fatal(err)
			}
			n += v
		}
		return float64(n)
	}
	var open, finished float64
	encodings := map[string]int{}
	before := usedMemory(b, f)
	for i := 0; i < b.N; i++ {
		j, _, err := f.s.Enqueue(f.ctx, benchRequest(g.next(), int64(i)))
		if err != nil {
			b.Fatal(err)
		}
		open += usage(j.ID)
	}
	// Everything the open promises hold, their places in the indexes included.
	b.ReportMetric(float64(usedMemory(b, f)-before)/float64(b.N), "B/open-all-keys")
	for i := 0; i < b.N; i++ {
		c, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "daemon-1/agent-1003", Lease: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.s.MarkDialled(f.ctx, c.Ref(), c.Lease.Token); err != nil {
			b.Fatal(err)
		}
		if _, err := f.s.MarkConnected(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now()); err != nil {
			b.Fatal(err)
		}
		if _, err := f.s.Complete(f.ctx, c.Ref(), c.Lease.Token, StateKept, "customer and agent talked"); err != nil {
			b.Fatal(err)
		}
		finished += usage(c.ID)
		enc, err := f.rdb.ObjectEncoding(f.ctx, k.job(c.ID)).Result()
		if err != nil {
			b.Fatal(err)
		}
		encodings[enc]++
	}
	// Everything else a lifetime leaves for the retention: its outcome and event stream
	// entries, its place in the done index, the counters.
	b.ReportMetric(float64(usedMemory(b, f)-before)/float64(b.N), "B/lifetime-all-keys")
	b.ReportMetric(open/float64(b.N), "B/open")
	b.ReportMetric(finished/float64(b.N), "B/finished")
	b.ReportMetric(float64(encodings["listpack"])/float64(b.N), "listpack-share")
}

// BenchmarkClaimQueueSize claims from a queue holding at least size open promises: the cost
// must not grow with the queue, because Claim reads the head of a sorted set and nothing else.
func BenchmarkClaimQueueSize(b *testing.B) {
	for _, size := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("open=%d", size), func(b *testing.B) {
			f := loaded(b)
			var g numbers
			fill(b, f, &g, size+b.N)
			m := meter(f)
			m.start(b, f)
			for i := 0; i < b.N; i++ {
				if _, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w", Lease: time.Minute}); err != nil {
					b.Fatal(err)
				}
			}
			m.report(b, f)
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
	m := meter(f)
	m.start(b, f)
	for i := 0; i < b.N; i++ {
		got, err := f.s.Outcomes(f.ctx, testQueue, 24*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		if got[StateCancelled] == 0 {
			b.Fatalf("Outcomes = %v, want the day's cancellations", got)
		}
	}
	m.report(b, f)
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
	m := meter(f)
	m.start(b, f)
	for i := 0; i < b.N; i++ {
		ok, err := r.Reserve(f.ctx, "1003", "d1", time.Minute)
		if err != nil || !ok {
			b.Fatalf("Reserve = %v, %v", ok, err)
		}
		if ok, err := r.Release(f.ctx, "1003", "d1"); err != nil || !ok {
			b.Fatalf("Release = %v, %v", ok, err)
		}
	}
	m.report(b, f)
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

// jobKeys are the keys one promise has to itself.
func jobKeys(k keyspace, id string) []string { return []string{k.job(id), k.history(id)} }

// usedMemory is Redis' used_memory (INFO memory).
func usedMemory(b *testing.B, f fixture) int64 {
	b.Helper()
	info, err := f.rdb.Info(f.ctx, "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("parsing %q: %v", line, err)
			}
			return n
		}
	}
	b.Fatal("INFO memory has no used_memory")
	return 0
}
