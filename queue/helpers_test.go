package queue

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
)

// t0 is a Monday morning; every test starts its fake clock there.
var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

const (
	testQueue = "sales"
	otherQ    = "support"
	alice     = "+31201234501"
	bob       = "+31201234502"
)

type fixture struct {
	s   *Store
	clk *clock.Fake
	rdb *redis.Client
	ctx context.Context
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	rdb := srv.Client()
	clk := clock.NewFake(t0)
	s, err := New(rdb, Options{Clock: clk, Queues: []string{testQueue, otherQ}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f := fixture{s: s, clk: clk, rdb: rdb, ctx: context.Background()}
	f.load(t)
	return f
}

// scriptsOnly is set (CALLBACKD_QUEUE_SCRIPTS=1, as make test runs the package a second time)
// to run every test with the scripts a Redis without Functions gets.
var scriptsOnly = os.Getenv("CALLBACKD_QUEUE_SCRIPTS") != ""

// load loads f's store as a daemon does (loadStore).
func (f fixture) load(t testing.TB) {
	t.Helper()
	loadStore(t, f.s, f.rdb)
}

// loadStore loads s, on rdb, as a daemon does: as the function library, or with scriptsOnly
// as scripts, the library never tried.
func loadStore(t testing.TB, s *Store, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	if scriptsOnly {
		for _, sc := range s.sc.all() {
			if err := sc.sc.Load(ctx, rdb).Err(); err != nil {
				t.Fatalf("loading %s: %v", sc.fn, err)
			}
		}
		return
	}
	if err := s.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if on, why := s.Functions(); !on {
		t.Fatalf("the store runs scripts after Load (%v); want its function library", why)
	}
}

// request is a valid request for number, due within the hour; tests change what they test.
func request(number string) Request {
	return Request{
		Queue: testQueue, Number: number, Name: "Customer", Reason: ReasonVoicemail, Target: "201",
		Deadline: t0.Add(time.Hour), MaxAttempts: 3,
		Source: Source{AsteriskID: "pbx1", LinkedID: "1700000000.1", Channel: "PJSIP/trunk-00000001"},
	}
}

func (f fixture) enqueue(t testing.TB, r Request) Job {
	t.Helper()
	j, _, err := f.s.Enqueue(f.ctx, r)
	if err != nil {
		t.Fatalf("Enqueue(%s): %v", r.Number, err)
	}
	return j
}

func (f fixture) claim(t testing.TB, o ClaimOptions) *Job {
	t.Helper()
	if o.Worker == "" {
		o.Worker = "w1"
	}
	if o.Lease == 0 {
		o.Lease = time.Minute
	}
	j, err := f.s.Claim(f.ctx, testQueue, o)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return j
}

func (f fixture) get(t testing.TB, ref Ref) Job {
	t.Helper()
	j, err := f.s.Get(f.ctx, ref)
	if err != nil {
		t.Fatalf("Get(%s): %v", ref.ID, err)
	}
	return j
}

// snapshot is every key with its serialized value, to prove that a refused call wrote nothing.
func (f fixture) snapshot(t testing.TB) map[string]string {
	t.Helper()
	keys, err := f.rdb.Keys(f.ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	out := map[string]string{}
	for _, k := range keys {
		v, err := f.rdb.Dump(f.ctx, k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		out[k] = v
	}
	return out
}

func (f fixture) assertUnchanged(t testing.TB, before map[string]string) {
	t.Helper()
	after := f.snapshot(t)
	if len(after) != len(before) {
		t.Errorf("DBSIZE went from %d to %d keys", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("key %s changed", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("key %s appeared", k)
		}
	}
}

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want one wrapping %v", err, want)
	}
}

func (f fixture) zscore(t testing.TB, key, id string) (float64, bool) {
	t.Helper()
	v, err := f.rdb.ZScore(f.ctx, key, id).Result()
	if errors.Is(err, redis.Nil) {
		return 0, false
	}
	if err != nil {
		t.Fatalf("ZSCORE %s %s: %v", key, id, err)
	}
	return v, true
}

// where lists the sets of the queue that hold id, to check a job sits in exactly one.
func (f fixture) where(t testing.TB, id string) []string {
	t.Helper()
	k := f.s.ks(testQueue)
	var in []string
	for name, key := range map[string]string{"ready": k.ready(), "delayed": k.delayed(), "leases": k.leases(), "done": k.done()} {
		if _, ok := f.zscore(t, key, id); ok {
			in = append(in, name)
		}
	}
	return in
}

func (f fixture) assertIn(t testing.TB, id, set string) {
	t.Helper()
	in := f.where(t, id)
	if len(in) != 1 || in[0] != set {
		t.Errorf("job %s is in %v, want only %s", id, in, set)
	}
}
