package asynqbench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/redistest"
)

// featureCommands are the commands each feature adds to a lifetime of the floor's jobs
// measured below (one enqueue, claim and complete), by name; the kept-rate window's PEXPIRE
// comes once per five-minute bucket, not per job, so it is not among them.
var featureCommands = map[string]map[string]float64{
	featDedupe:     {"get": 2, "set": 1, "del": 1},
	featEvents:     {"xadd": 3},
	featPreference: {"zadd": 1, "zrem": 1},
	featOpenIndex:  {"zadd": 1, "zrem": 1},
	featExpiry:     {"pexpire": 2},
	featTotals:     {"hincrby": 2},
	featWindow:     {"hincrby": 1},
	featWake:       {"publish": 1},
	featFencing:    {"incr": 1},
	featDelayed:    {"zrangebyscore": 1},
	featDoneIndex:  {"zadd": 1},
}

// TestTheFloorSendsTheStoresCommands: the floor's figures stand for the store's commands only
// while it sends them, per lifetime, by name and count.
func TestTheFloorSendsTheStoresCommands(t *testing.T) {
	checkFloor(t, newRig(t, redistest.Options{}))
}

// TestAFloorWithoutAFeatureSendsNoneOfItsCommands is what makes BenchmarkFeatureCost's
// attribution true: leaving a feature out of the floor takes away exactly its commands and no
// other, and the queue alone (every feature left out) still drains every job it took.
func TestAFloorWithoutAFeatureSendsNoneOfItsCommands(t *testing.T) {
	r := newRig(t, redistest.Options{})
	const n = 20
	perLifetime := func(features ...string) map[string]float64 {
		t.Helper()
		r.flush(t)
		r.resetStats(t)
		c := redis.NewClient(&redis.Options{Addr: r.srv.Addr()})
		defer func() { _ = c.Close() }()
		fl := newFloorWithout(c, features...)
		ctx := context.Background()
		for i := 1; i <= n; i++ {
			if err := fl.enqueue(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
		for i := 1; i <= n; i++ {
			j, err := fl.claim(ctx)
			if err != nil {
				t.Fatalf("without %v, claim %d of %d: %v", features, i, n, err)
			}
			if err := fl.complete(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		counts := r.commandCounts(t)
		if _, err := fl.claim(ctx); err != errEmpty {
			t.Fatalf("without %v, a claim after %d lifetimes answered %v, not empty", features, n, err)
		}
		// The window's bucket is expired once, at its first count, not per lifetime.
		if !slices.Contains(features, featWindow) {
			counts["pexpire"]--
		}
		for name := range counts {
			counts[name] /= n
		}
		return counts
	}
	whole := perLifetime()
	var all []string
	for _, f := range floorFeatures {
		all = append(all, f.name)
		t.Run(f.name, func(t *testing.T) {
			without := perLifetime(f.name)
			for _, name := range commandNames(whole, without) {
				if got, want := whole[name]-without[name], featureCommands[f.name][name]; got != want {
					t.Errorf("leaving out %s took %v %s per lifetime away, want %v", f.name, got, name, want)
				}
			}
		})
	}
	t.Run("every feature", func(t *testing.T) {
		alone := perLifetime(all...)
		want := map[string]float64{"hset": 3, "zadd": 2, "zpopmin": 1, "hmget": 2, "zrem": 1}
		for _, name := range commandNames(alone, want) {
			if alone[name] != want[name] {
				t.Errorf("the queue alone sends %v %s per lifetime, want %v", alone[name], name, want[name])
			}
		}
	})
}

// commandNames are the names in any of the counts, sorted.
func commandNames(counts ...map[string]float64) []string {
	seen := map[string]bool{}
	var names []string
	for _, c := range counts {
		for name := range c {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	return names
}

// spaceJobs are the jobs over which BenchmarkFeatureCost measures commands and bytes.
const spaceJobs = 20000

// featureCost is what a floor variant (or asynq) costs per job.
type featureCost struct {
	commands, open, finished  float64 // per lifetime; bytes per open and per finished job
	enqueue, claim, completes float64 // redis-server instructions
}

func (c featureCost) drained() float64  { return c.claim + c.completes }
func (c featureCost) lifetime() float64 { return c.enqueue + c.drained() }

// BenchmarkFeatureCost prints what each of the store's features costs Redis, measured on the
// floor (the store's commands without its logic, see floor) with that feature's commands left
// out: commands and bytes on a plain redis-server, instructions under callgrind. Beside them
// are asynq's, the queue alone (every feature left out) and a one-field job (oneField), the
// least any promise store could send. Then, for each target of issue #17, the fewest features
// whose removal reaches it (largest saving first; the set measured again as one floor, not
// summed), or that none does. The instruction rows stand for the rates as far as a rate is
// bound by redis-server's CPU: enqueue ≥ 1.0× asynq's needs at most asynq's instructions per
// enqueue, and so on. It needs valgrind and skips without it: `cd bench/asynq && go test -run
// '^$' -bench FeatureCost -benchtime 1x .` (about 5 minutes).
func BenchmarkFeatureCost(b *testing.B) {
	cg := startCallgrind(b)
	plain := newRig(b, redistest.Options{})
	ctx := context.Background()
	variant := 0

	// space measures s's commands and bytes on the plain server, over spaceJobs: a feature's
	// bytes are tens per job, and over the side-by-side's 2000 jobs what the server allocates
	// for itself meanwhile moved the figure by as much.
	space := func(s system) featureCost {
		plain.flush(b)
		plain.resetStats(b)
		before := plain.dataMemory(b)
		enqueueN(b, s, 8, spaceJobs)
		open := (plain.dataMemory(b) - before) / spaceJobs
		drainN(b, s, spaceJobs, 10)
		return featureCost{commands: plain.commands(b) / spaceJobs, open: open,
			finished: (plain.dataMemory(b) - before) / spaceJobs}
	}
	// measure is a floor without the features named, in space and instructions.
	measure := func(without []string) featureCost {
		variant++
		c := space(newFloorWithout(plain.admin, without...))
		fl := newFloorWithout(cg.client(), without...)
		if err := cg.client().FlushAll(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		part := fmt.Sprintf("v%d ", variant)
		lifetime(b, fl, fl.claim, fl.complete)
		cg.dump(part + "warm-up")
		enqueueRate(b, fl, 8)
		cg.dump(part + "enqueue")
		drainIn(b, part, fl.claim, fl.complete, cg.dump)
		counts := cg.counts(b)
		c.enqueue, c.claim, c.completes = counts[part+"enqueue"]/jobs, counts[part+"claim"]/jobs,
			counts[part+"complete"]/jobs
		return c
	}

	// asynq, and the claim ceiling's script, as the targets' yardsticks.
	aqSpace := space(plain.aq)
	// The store's own bytes and commands, which the floor's should match.
	store := space(plain.cb)
	aq := newAsynq(cg.client())
	if err := cg.client().FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	if err := aq.enqueue(ctx, jobs+1); err != nil {
		b.Fatal(err)
	}
	if _, err := aq.drain(ctx, 1, 10); err != nil {
		b.Fatal(err)
	}
	cg.dump("asynq warm-up")
	enqueueRate(b, aq, 8)
	cg.dump("asynq enqueue")
	drainRate(b, aq, 10)
	cg.dump("asynq drain")
	ceilingClaim := ceilingInstructions(b, cg)
	counts := cg.counts(b)
	asynqCost := aqSpace
	asynqCost.enqueue, asynqCost.claim = counts["asynq enqueue"]/jobs, counts["asynq drain"]/jobs

	whole := measure(nil)
	single := map[string]featureCost{}
	var all []string
	for _, f := range floorFeatures {
		single[f.name] = measure([]string{f.name})
		all = append(all, f.name)
	}
	alone := measure(all)
	one := space(newOneField(plain.admin))
	{
		o := newOneField(cg.client())
		lifetime(b, o, o.claim, o.complete)
		cg.dump("one-field warm-up")
		enqueueRate(b, o, 8)
		cg.dump("one-field enqueue")
		drainIn(b, "one-field ", o.claim, o.complete, cg.dump)
		counts := cg.counts(b)
		one.enqueue, one.claim, one.completes = counts["one-field enqueue"]/jobs, counts["one-field claim"]/jobs,
			counts["one-field complete"]/jobs
	}

	fmt.Printf("%-18s %9s %11s %11s %11s %8s %8s\n", "left out", "commands", "Ir enqueue", "Ir drained",
		"Ir lifetime", "B open", "B done")
	line := func(name string, c featureCost) {
		fmt.Printf("%-18s %9.1f %11.0f %11.0f %11.0f %8.0f %8.0f\n", name, c.commands, c.enqueue, c.drained(),
			c.lifetime(), c.open, c.finished)
	}
	line("nothing (floor)", whole)
	for _, f := range floorFeatures {
		c := single[f.name]
		fmt.Printf("%-18s %9.1f %11.0f %11.0f %11.0f %8.0f %8.0f   %s\n", f.name, c.commands-whole.commands,
			c.enqueue-whole.enqueue, c.drained()-whole.drained(), c.lifetime()-whole.lifetime(), c.open-whole.open,
			c.finished-whole.finished, f.gives)
	}
	line("every feature", alone)
	line("one-field job", one)
	line("asynq", asynqCost)
	fmt.Printf("%-18s %9.1f %11s %11s %11s %8.0f %8.0f   (instructions: BenchmarkServerInstructions)\n", "the store",
		store.commands, "", "", "", store.open, store.finished)
	fmt.Printf("%-18s %9s %11s %11.0f   (claim only: the minimal ZPOPMIN + lease + HSET script)\n", "claim ceiling", "", "",
		ceilingClaim)

	targets := []struct {
		name  string
		of    func(featureCost) float64
		limit float64
	}{
		{"≤ 20 commands per lifetime", func(c featureCost) float64 { return c.commands }, 20},
		{"enqueue ≥ 1.0× asynq (≤ its Ir per enqueue)", func(c featureCost) float64 { return c.enqueue },
			asynqCost.enqueue},
		{"drain ≥ 1.5× asynq (≤ its Ir per drained job ÷ 1.5)", func(c featureCost) float64 { return c.drained() },
			asynqCost.drained() / 1.5},
		{"claim ≥ 0.8× the ceiling (≤ its Ir ÷ 0.8)", func(c featureCost) float64 { return c.claim },
			ceilingClaim / 0.8},
		{"≤ 600 B per open promise", func(c featureCost) float64 { return c.open }, 600},
		{"≤ 1 KiB per finished promise", func(c featureCost) float64 { return c.finished }, 1024},
	}
	fmt.Println()
	for _, t := range targets {
		at := t.of(whole)
		if at <= t.limit {
			fmt.Printf("%-52s met with every feature (%.0f, limit %.0f)\n", t.name, at, t.limit)
			continue
		}
		if t.of(alone) > t.limit {
			fmt.Printf("%-52s out of reach: the queue alone, every feature gone, is %.0f; a one-field job %.0f (limit %.0f)\n",
				t.name, t.of(alone), t.of(one), t.limit)
			continue
		}
		// The features that save anything on this measure, largest saving first.
		var order []string
		for _, f := range all {
			if t.of(single[f]) < at {
				order = append(order, f)
			}
		}
		sort.SliceStable(order, func(i, j int) bool { return t.of(single[order[i]]) < t.of(single[order[j]]) })
		var drop []string
		saved := 0.0
		for _, f := range order {
			drop = append(drop, f)
			saved += at - t.of(single[f])
			if at-saved <= t.limit {
				break
			}
		}
		got := t.of(measure(drop))
		verdict := "reached"
		if got > t.limit {
			verdict = "still not reached"
		}
		fmt.Printf("%-52s %s without %s: %.0f (limit %.0f)\n", t.name, verdict, strings.Join(drop, ", "), got,
			t.limit)
	}
}

// oneField is the least a leased queue of promises can send: the job as one JSON value (as
// asynq keeps its task, one protobuf value), the ready index and the lease, with none of the
// floor's features, fields or history. It shows whether a target is within reach of any
// promise store at all, whatever it gave up.
type oneField struct {
	rdb                         redis.UniversalClient
	enqueueS, claimS, completeS *redis.Script
}

var errOneFieldEmpty = errors.New("one-field queue: nothing ready")

func newOneField(rdb redis.UniversalClient) *oneField {
	return &oneField{rdb: rdb,
		enqueueS: redis.NewScript(`redis.call('HSET', KEYS[1], 'msg', ARGV[2], 'state', 'pending')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return {'ok', ARGV[1]}`),
		claimS: redis.NewScript(`local id = redis.call('ZPOPMIN', KEYS[1])[1]
if not id then
  return {'err', 'EMPTY'}
end
local jk = ARGV[1] .. id
local msg = redis.call('HGET', jk, 'msg')
redis.call('ZADD', KEYS[2], ARGV[2], id)
redis.call('HSET', jk, 'state', 'dialing', 'token', '1', 'worker', ARGV[3], 'lease_expires', ARGV[2])
return {'ok', id, msg}`),
		completeS: redis.NewScript(`redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'failed', 'finished', ARGV[2])
return {'finished', ARGV[1]}`)}
}

const oneFieldBase = "one:{" + queueName + "}:"

func (o *oneField) enqueue(ctx context.Context, i int) error {
	now := time.Now()
	id := ulid.Make().String()
	msg := fmt.Sprintf(`{"id":"%s","queue":"%s","number":"+3120%07d","reasons":["api"],"targets":["201"],`+
		`"created":%d,"not_before":%d,"deadline":%d,"attempts":0,"max_attempts":3,"target":"201","owner":"201"}`,
		id, queueName, i, now.UnixMilli(), now.UnixMilli(), now.Add(time.Hour).UnixMilli())
	return o.enqueueS.Run(ctx, o.rdb, []string{oneFieldBase + "job:" + id, oneFieldBase + "ready"}, id, msg,
		ms(now.Add(time.Hour+time.Duration(i)*time.Millisecond))).Err()
}

func (o *oneField) claim(ctx context.Context) (string, error) {
	v, err := o.claimS.Run(ctx, o.rdb, []string{oneFieldBase + "ready", oneFieldBase + "leases"},
		oneFieldBase+"job:", ms(time.Now().Add(time.Minute)), "w").Slice()
	if err != nil {
		return "", fmt.Errorf("one-field claim: %w", err)
	}
	if len(v) < 3 || v[0] != "ok" {
		return "", errOneFieldEmpty
	}
	id, _ := v[1].(string)
	return id, nil
}

func (o *oneField) complete(ctx context.Context, id string) error {
	return o.completeS.Run(ctx, o.rdb, []string{oneFieldBase + "job:" + id, oneFieldBase + "leases"}, id,
		ms(time.Now())).Err()
}

func (o *oneField) drain(ctx context.Context, _, concurrency int) (time.Duration, error) {
	return drainWith(ctx, concurrency, o.claim, o.complete, errOneFieldEmpty)
}

// ceilingInstructions answers the instructions per claim of ceilingScript, the minimal claim
// that the side-by-side's claim ceiling runs, sent from 10 goroutines.
func ceilingInstructions(b *testing.B, cg *callgrindServer) float64 {
	ctx := context.Background()
	c := cg.client()
	if err := c.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	members := make([]redis.Z, 0, jobs+1)
	for j := 0; j <= jobs; j++ {
		members = append(members, redis.Z{Score: float64(j), Member: fmt.Sprintf("%026d", j)})
	}
	if err := c.ZAdd(ctx, "{c}:ready", members...).Err(); err != nil {
		b.Fatal(err)
	}
	script := redis.NewScript(ceilingScript)
	keys := []string{"{c}:ready", "{c}:leases", "{c}:job:"}
	if err := script.Run(ctx, c, keys, "1").Err(); err != nil {
		b.Fatal(err)
	}
	cg.dump("ceiling warm-up")
	var wg sync.WaitGroup
	next := make(chan struct{}, jobs)
	for i := 0; i < jobs; i++ {
		next <- struct{}{}
	}
	close(next)
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if err := script.Run(ctx, c, keys, "1").Err(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	cg.dump("ceiling claim")
	return cg.counts(b)["ceiling claim"] / jobs
}
