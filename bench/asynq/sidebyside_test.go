package asynqbench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

const (
	rounds     = 3    // interleaved rounds; ratios are the medians of the rounds' ratios
	jobs       = 2000 // promises (tasks) per measurement
	queueName  = "bench"
	retention  = 720 * time.Hour
	poolSize   = 64
	aofJobs    = 300 // lifetimes written with fsync always for the AOF measure
	ceilingOps = 20000
)

// system is one job store under test: callbackd's promise store or asynq.
type system interface {
	// enqueue makes job i.
	enqueue(ctx context.Context, i int) error
	// drain processes every enqueued job with concurrency workers (claim → complete, or
	// asynq's server running a handler that succeeds) and answers how long it took until the
	// n-th completion was stored in Redis. Starting and stopping workers beyond that is not
	// timed.
	drain(ctx context.Context, n, concurrency int) (time.Duration, error)
}

type callbackd struct{ s *queue.Store }

func newCallbackd(b testing.TB, rdb redis.UniversalClient) *callbackd {
	s, err := queue.New(rdb, queue.Options{Clock: clock.Real{}, Queues: []string{queueName}, Retention: retention})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	return &callbackd{s: s}
}

func (c *callbackd) enqueue(ctx context.Context, i int) error {
	now := time.Now()
	_, _, err := c.s.Enqueue(ctx, queue.Request{Queue: queueName, Number: fmt.Sprintf("+3120%07d", i),
		Reason: queue.ReasonAPI, Target: "201", Deadline: now.Add(time.Hour + time.Duration(i)*time.Millisecond),
		MaxAttempts: 3})
	return err
}

func (c *callbackd) claim(ctx context.Context) (*queue.Job, error) {
	return c.s.Claim(ctx, queueName, queue.ClaimOptions{Worker: "w", Lease: time.Minute})
}

func (c *callbackd) complete(ctx context.Context, j *queue.Job) error {
	_, err := c.s.Complete(ctx, j.Ref(), j.Lease.Token, queue.StateFailed, "bench")
	return err
}

func (c *callbackd) drain(ctx context.Context, _, concurrency int) (time.Duration, error) {
	return drainWith(ctx, concurrency, c.claim, c.complete, queue.ErrEmpty)
}

// drainWith claims and completes with concurrency workers until a claim answers empty, and
// answers how long that took and the first error.
func drainWith[J any](ctx context.Context, concurrency int, claim func(context.Context) (J, error),
	complete func(context.Context, J) error, empty error) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := claim(ctx)
				if errors.Is(err, empty) {
					return
				}
				if err == nil {
					err = complete(ctx, j)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	return took, <-errs
}

type asynqSystem struct {
	rdb       redis.UniversalClient
	client    *asynq.Client
	completed *completions
}

func newAsynq(rdb redis.UniversalClient) *asynqSystem {
	c := &completions{key: "asynq:{" + queueName + "}:completed", reached: make(chan struct{})}
	rdb.AddHook(c)
	return &asynqSystem{rdb: rdb, client: asynq.NewClientFromRedisClient(rdb), completed: c}
}

// completions counts asynq's stored completions: the script calls that name the queue's
// completed set among their keys (markAsComplete, which a task with a retention takes) and
// succeeded. The handler returning is not the end of a task's processing: asynq stores the
// completion after it, as callbackd's Complete does before it returns.
type completions struct {
	key     string
	mu      sync.Mutex
	n, want int
	reached chan struct{}
}

// expect resets the count and answers a channel closed when want completions are stored.
func (c *completions) expect(want int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.want, c.reached = 0, want, make(chan struct{})
	return c.reached
}

func (c *completions) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *completions) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil && c.completes(cmd) {
			c.mu.Lock()
			c.n++
			if c.n == c.want {
				close(c.reached)
			}
			c.mu.Unlock()
		}
		return err
	}
}
func (c *completions) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (c *completions) completes(cmd redis.Cmder) bool {
	if !scriptCommands[strings.ToLower(cmd.Name())] {
		return false
	}
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && s == c.key {
			return true
		}
	}
	return false
}

func (a *asynqSystem) enqueue(ctx context.Context, i int) error {
	// The payload carries what a promise's hash would: who to call, why, by when.
	payload := fmt.Sprintf(`{"number":"+3120%07d","reason":"api","target":"201","deadline":%d}`, i,
		time.Now().Add(time.Hour).UnixMilli())
	_, err := a.client.EnqueueContext(ctx, asynq.NewTask("callback", []byte(payload)), asynq.Queue(queueName),
		asynq.MaxRetry(3), asynq.Retention(retention))
	return err
}

// drain times asynq's server from Start until the n-th completion is stored. Shutdown is left
// out: asynq's processor, finding the queue empty, sleeps TaskCheckInterval/2 plus up to a
// TaskCheckInterval of jitter (0.5–1.5 s by default) before it looks again, and Shutdown waits
// for that sleep, so timing it made asynq's drain of 2000 tasks look five times slower than it is.
func (a *asynqSystem) drain(ctx context.Context, n, concurrency int) (time.Duration, error) {
	reached := a.completed.expect(n)
	srv := asynq.NewServerFromRedisClient(a.rdb, asynq.Config{Concurrency: concurrency,
		Queues: map[string]int{queueName: 1}, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("callback", func(context.Context, *asynq.Task) error { return nil })
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, err
	}
	defer srv.Shutdown()
	select {
	case <-reached:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// rig is one redis-server with a client per system, each counting what it sends.
type rig struct {
	srv                  *redistest.Server
	admin                *redis.Client
	cb, aq, floor        system
	cbMeter, aqM, floorM *meter
}

func newRig(b testing.TB, opts redistest.Options) *rig {
	srv := redistest.Start(b, opts)
	client := func() (*redis.Client, *meter) {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: poolSize})
		b.Cleanup(func() { _ = c.Close() })
		m := &meter{}
		c.AddHook(m)
		return c, m
	}
	r := &rig{srv: srv, admin: srv.Client()}
	cbc, cbm := client()
	aqc, aqm := client()
	r.cb, r.cbMeter = newCallbackd(b, cbc), cbm
	r.aq, r.aqM = newAsynq(aqc), aqm
	flc, flm := client()
	r.floor, r.floorM = newFloor(flc), flm
	return r
}

// meter counts round trips and the top-level commands sent.
type meter struct {
	mu    sync.Mutex
	trips int
	sent  map[string]int
}

func (m *meter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (m *meter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { m.note(cmd); return next(ctx, cmd) }
}
func (m *meter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { m.note(cmds...); return next(ctx, cmds) }
}
func (m *meter) note(cmds ...redis.Cmder) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sent == nil {
		m.sent = map[string]int{}
	}
	m.trips++
	for _, c := range cmds {
		m.sent[strings.ToLower(c.Name())]++
	}
}
func (m *meter) reset() (trips int, sent map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	trips, sent = m.trips, m.sent
	m.trips, m.sent = 0, nil
	return trips, sent
}

var scriptCommands = map[string]bool{"eval": true, "evalsha": true, "eval_ro": true, "evalsha_ro": true, "fcall": true, "fcall_ro": true}

func (r *rig) flush(b testing.TB) {
	if err := r.admin.FlushAll(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
}

func (r *rig) info(b testing.TB, section, field string) float64 {
	s, err := r.admin.Info(context.Background(), section).Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO %s %s: %v", section, field, err)
			}
			return f
		}
	}
	b.Fatalf("INFO %s has no %s", section, field)
	return 0
}

// dataMemory is what redis-server has allocated less its clients' buffers: a pool's
// connections grow and shrink their query and reply buffers (tens of KiB each) on their own
// schedule, which moved a 2000-job measure by a hundred bytes per job either way.
func (r *rig) dataMemory(b testing.TB) float64 {
	return r.info(b, "memory", "used_memory") - r.info(b, "memory", "mem_clients_normal")
}

// serverCPU is the CPU time redis-server has used, user and system.
func (r *rig) serverCPU(b testing.TB) time.Duration {
	secs := r.info(b, "cpu", "used_cpu_user") + r.info(b, "cpu", "used_cpu_sys")
	return time.Duration(secs * float64(time.Second))
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(b testing.TB) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// commands is how many commands Redis ran since the last reset, each command inside a script
// counted once and the script call around them not at all.
func (r *rig) commands(b testing.TB) float64 {
	var n float64
	for _, c := range r.commandCounts(b) {
		n += c
	}
	return n
}

// commandCounts is commands by command name.
func (r *rig) commandCounts(b testing.TB) map[string]float64 {
	s, err := r.admin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	counts := map[string]float64{}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		if scriptCommands[name] || name == "info" || name == "config|resetstat" || name == "hello" ||
			strings.HasPrefix(name, "client|") || name == "script|load" || name == "flushall" {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		c, err := strconv.ParseFloat(calls, 64)
		if err != nil {
			b.Fatalf("commandstats %q: %v", line, err)
		}
		counts[name] = c
	}
	return counts
}

// checkFloor fails the benchmark unless the floor sends, per lifetime, the very commands
// callbackd's store sends (by name and count): a floor that drifted from the scripts would
// measure something else.
func checkFloor(b testing.TB, r *rig) {
	per := func(s system) map[string]float64 {
		r.flush(b)
		r.resetStats(b)
		const n = 50
		ctx := context.Background()
		for i := 1; i <= n; i++ {
			if err := s.enqueue(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := s.drain(dctx, n, 1); err != nil {
			b.Fatal(err)
		}
		counts := r.commandCounts(b)
		for name := range counts {
			counts[name] /= n
		}
		return counts
	}
	store, fl := per(r.cb), per(r.floor)
	names := map[string]bool{}
	for name := range store {
		names[name] = true
	}
	for name := range fl {
		names[name] = true
	}
	var diff []string
	for name := range names {
		if store[name] != fl[name] {
			diff = append(diff, fmt.Sprintf("%s: store %.2f, floor %.2f", name, store[name], fl[name]))
		}
	}
	if len(diff) > 0 {
		sort.Strings(diff)
		b.Fatalf("the floor no longer sends the store's commands per lifetime (floor_test.go must follow the scripts): %s",
			strings.Join(diff, "; "))
	}
}

func (r *rig) resetStats(b testing.TB) {
	if err := r.admin.ConfigResetStat(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
	r.cbMeter.reset()
	r.aqM.reset()
	r.floorM.reset()
}

// enqueueRate enqueues jobs with clients goroutines and answers jobs per second.
func enqueueRate(b testing.TB, s system, clients int) float64 { return enqueueN(b, s, clients, jobs) }

// enqueueN enqueues jobs 1..n with clients goroutines and answers jobs per second.
func enqueueN(b testing.TB, s system, clients, n int) float64 {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if err := s.enqueue(ctx, int(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return jobs / time.Since(start).Seconds()
}

func drainRate(b testing.TB, s system, concurrency int) float64 {
	return drainN(b, s, jobs, concurrency)
}

// drainN drains n enqueued jobs with concurrency workers and answers jobs per second.
func drainN(b testing.TB, s system, n, concurrency int) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	took, err := s.drain(ctx, n, concurrency)
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / took.Seconds()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkSideBySide prints, per measure, callbackd's figure, asynq's and their ratio (the
// median of the rounds' ratios; rates: higher is better for callbackd, costs: lower).
func BenchmarkSideBySide(b *testing.B) {
	r := newRig(b, redistest.Options{})
	type measure struct {
		name     string
		unit     string
		run      func(s system, m *meter) float64
		cb, aq   []float64
		ratioWas []float64
		// withFloor: the floor of callbackd's commands (see floor) runs this measure too.
		withFloor bool
		floorWas  []float64 // the floor's ratio to asynq per round
	}
	trips, serverCPU, clientCPU := map[system]float64{}, map[system]float64{}, map[system]float64{}
	measures := []*measure{
		{name: "enqueue, 1 client", unit: "jobs/s", withFloor: true, run: func(s system, _ *meter) float64 { r.flush(b); return enqueueRate(b, s, 1) }},
		{name: "enqueue, 8 clients", unit: "jobs/s", withFloor: true, run: func(s system, _ *meter) float64 { r.flush(b); return enqueueRate(b, s, 8) }},
		{name: "drain, concurrency 10", unit: "jobs/s", withFloor: true, run: func(s system, _ *meter) float64 {
			r.flush(b)
			enqueueRate(b, s, 8)
			return drainRate(b, s, 10)
		}},
		{name: "drain, concurrency 50", unit: "jobs/s", withFloor: true, run: func(s system, _ *meter) float64 {
			r.flush(b)
			enqueueRate(b, s, 8)
			return drainRate(b, s, 50)
		}},
		// One enqueue (8 clients) and drain (concurrency 10) gives the commands and the rows
		// after it: the round trips, and where a lifetime's time goes on a machine whose two
		// cores the server and the client share (the server's CPU, and this process's: the
		// store's client side, or asynq's client and server).
		{name: "Redis commands per lifetime", unit: "commands", run: func(s system, m *meter) float64 {
			r.flush(b)
			r.resetStats(b)
			server, client := r.serverCPU(b), processCPU(b)
			enqueueRate(b, s, 8)
			drainRate(b, s, 10)
			client, server = processCPU(b)-client, r.serverCPU(b)-server
			n, _ := m.reset()
			trips[s] = float64(n) / jobs
			serverCPU[s], clientCPU[s] = server.Seconds()*1e6/jobs, client.Seconds()*1e6/jobs
			return r.commands(b) / jobs
		}},
		{name: "round trips per lifetime", unit: "round trips", run: func(s system, _ *meter) float64 { return trips[s] }},
		{name: "redis-server CPU per lifetime", unit: "µs", run: func(s system, _ *meter) float64 { return serverCPU[s] }},
		{name: "client CPU per lifetime", unit: "µs", run: func(s system, _ *meter) float64 { return clientCPU[s] }},
		{name: "memory per open promise", unit: "B", run: func(s system, _ *meter) float64 {
			r.flush(b)
			before := r.dataMemory(b)
			enqueueRate(b, s, 8)
			return (r.dataMemory(b) - before) / jobs
		}},
		{name: "memory per finished promise (kept 720 h)", unit: "B", run: func(s system, _ *meter) float64 {
			r.flush(b)
			before := r.dataMemory(b)
			enqueueRate(b, s, 8)
			drainRate(b, s, 10)
			return (r.dataMemory(b) - before) / jobs
		}},
	}
	checkFloor(b, r)
	for round := 0; round < rounds; round++ {
		for _, m := range measures {
			// Alternate who goes first, so neither always finds a warmer server.
			order := []system{r.cb, r.aq}
			if round%2 == 1 {
				order = []system{r.aq, r.cb}
			}
			if m.withFloor {
				// Each of the three goes first in one of the rounds.
				all := []system{r.cb, r.aq, r.floor}
				order = append(all[round%3:], all[:round%3]...)
			}
			got := map[system]float64{}
			for _, s := range order {
				meterOf := r.cbMeter
				if s == r.aq {
					meterOf = r.aqM
				}
				if s == r.floor {
					meterOf = r.floorM
				}
				got[s] = m.run(s, meterOf)
			}
			m.cb, m.aq = append(m.cb, got[r.cb]), append(m.aq, got[r.aq])
			m.ratioWas = append(m.ratioWas, got[r.cb]/got[r.aq])
			if m.withFloor {
				m.floorWas = append(m.floorWas, got[r.floor]/got[r.aq])
			}
		}
	}
	aofCB, aofAQ := aofPerLifetime(b)
	ceiling, goCeiling, claims := claimCeiling(b)
	// Printed rather than logged: a benchmark's log is cut after ten lines.
	fmt.Printf("%-42s %14s %14s %8s\n", "measure (medians of "+strconv.Itoa(rounds)+" rounds)", "callbackd", "asynq", "ratio")
	for _, m := range measures {
		fmt.Printf("%-42s %14.1f %14.1f %7.2f×   (%s)\n", m.name, median(m.cb), median(m.aq), median(m.ratioWas), m.unit)
	}
	fmt.Printf("%-42s %14.1f %14.1f %7.2f×   (B)\n", "AOF per lifetime", aofCB, aofAQ, aofCB/aofAQ)
	fmt.Printf("%-42s %14.1f %14.1f %7.2f×   (claims/s; the second column is redis-benchmark's minimal claim script)\n",
		"claim, 50 goroutines vs the ceiling", claims, ceiling, claims/ceiling)
	fmt.Printf("%-42s %14.1f %14.1f %7.2f×   (claims/s; the second column is the same script sent by go-redis from 50 goroutines)\n",
		"claim vs the ceiling from go-redis", claims, goCeiling, claims/goCeiling)
	// What a script set with callbackd's commands and no logic at all would reach: how far
	// each rate is from asynq's before any of callbackd's own Lua is paid for.
	for _, m := range measures {
		if m.withFloor {
			fmt.Printf("%-42s %14s %14s %7.2f×   (the floor of callbackd's commands, no script logic, against asynq)\n",
				m.name+", floor", "", "", median(m.floorWas))
		}
	}
}

// aofPerLifetime is the append-only file written per whole lifetime (enqueue → drained), on a
// server of its own with AOF on.
func aofPerLifetime(b *testing.B) (cb, aq float64) {
	r := newRig(b, redistest.Options{AppendOnly: true})
	ctx := context.Background()
	per := func(s system) float64 {
		r.flush(b)
		before := r.info(b, "persistence", "aof_current_size")
		for i := 1; i <= aofJobs; i++ {
			if err := s.enqueue(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
		dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if _, err := s.drain(dctx, aofJobs, 10); err != nil {
			b.Fatal(err)
		}
		return (r.info(b, "persistence", "aof_current_size") - before) / aofJobs
	}
	return per(r.cb), per(r.aq)
}

// ceilingScript is the least a claim can be: take the earliest id, lease it, mark its job.
const ceilingScript = `local id = redis.call('ZPOPMIN', KEYS[1])
if #id == 0 then return false end
redis.call('ZADD', KEYS[2], ARGV[1], id[1])
redis.call('HSET', KEYS[3] .. id[1], 'state', 'dialing', 'token', ARGV[1])
return id[1]`

// claimCeiling answers what redis-benchmark gets from 50 clients running ceilingScript, what
// go-redis gets running it from 50 goroutines (the same client callbackd uses, so the
// difference between the two ceilings is the client's own cost on this machine), and what
// callbackd's Claim gets from 50 goroutines, on the same server.
func claimCeiling(b *testing.B) (ceiling, goCeiling, claims float64) {
	r := newRig(b, redistest.Options{})
	ctx := context.Background()
	sha, err := r.admin.ScriptLoad(ctx, ceilingScript).Result()
	if err != nil {
		b.Fatal(err)
	}
	fillReady := func() {
		for i := 0; i < ceilingOps; i += 1000 {
			members := make([]redis.Z, 0, 1000)
			for j := i; j < i+1000; j++ {
				members = append(members, redis.Z{Score: float64(j), Member: fmt.Sprintf("%026d", j)})
			}
			if err := r.admin.ZAdd(ctx, "{c}:ready", members...).Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
	fillReady()
	host, port, _ := strings.Cut(r.srv.Addr(), ":")
	out, err := exec.Command("redis-benchmark", "-h", host, "-p", port, "-n", strconv.Itoa(ceilingOps), "-c", "50",
		"--csv", "EVALSHA", sha, "3", "{c}:ready", "{c}:leases", "{c}:job:", "1").Output()
	if err != nil {
		b.Fatalf("redis-benchmark: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) > 1 && strings.HasPrefix(f[0], `"EVALSHA`) {
			ceiling, err = strconv.ParseFloat(strings.Trim(f[1], `"`), 64)
			if err != nil {
				b.Fatalf("redis-benchmark line %q: %v", line, err)
			}
		}
	}
	if ceiling == 0 {
		b.Fatalf("redis-benchmark said nothing readable: %s", out)
	}
	r.flush(b)
	fillReady()
	gc := redis.NewClient(&redis.Options{Addr: r.srv.Addr(), PoolSize: poolSize})
	defer func() { _ = gc.Close() }()
	var popped atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < 50; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := gc.EvalSha(ctx, sha, []string{"{c}:ready", "{c}:leases", "{c}:job:"}, 1).Err()
				if errors.Is(err, redis.Nil) {
					return
				}
				if err != nil {
					b.Error(err)
					return
				}
				popped.Add(1)
			}
		}()
	}
	wg.Wait()
	goCeiling = float64(popped.Load()) / time.Since(start).Seconds()
	r.flush(b)
	cb := r.cb.(*callbackd)
	var next atomic.Int64
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= ceilingOps/4; i = next.Add(1) {
				if err := cb.enqueue(ctx, int(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var claimed atomic.Int64
	start = time.Now()
	for c := 0; c < 50; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := cb.s.Claim(ctx, queueName, queue.ClaimOptions{Worker: "w", Lease: time.Hour}); err != nil {
					if !errors.Is(err, queue.ErrEmpty) {
						b.Error(err)
					}
					return
				}
				claimed.Add(1)
			}
		}()
	}
	wg.Wait()
	return ceiling, goCeiling, float64(claimed.Load()) / time.Since(start).Seconds()
}
