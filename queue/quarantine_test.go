package queue

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// quarantineFixture is a fixture whose store reports every quarantined job.
type quarantineFixture struct {
	fixture
	mu   sync.Mutex
	seen []Quarantined
}

func newQuarantineFixture(t *testing.T) *quarantineFixture {
	t.Helper()
	f := &quarantineFixture{fixture: newFixture(t)}
	s, err := New(f.rdb, Options{Clock: f.clk, Queues: []string{testQueue, otherQ}, OnQuarantine: func(q Quarantined) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.seen = append(f.seen, q)
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	f.load(t)
	return f
}

func (f *quarantineFixture) reported() []Quarantined {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Quarantined(nil), f.seen...)
}

// assertQuarantined checks that id, and only id, was moved aside once for a reason naming
// what was wrong: reported, counted, in the dead-letter hash, in no index.
func (f *quarantineFixture) assertQuarantined(t *testing.T, id, reason string) {
	t.Helper()
	got := f.reported()
	if len(got) != 1 || got[0].ID != id || got[0].Queue != testQueue || !strings.Contains(got[0].Reason, reason) {
		t.Fatalf("quarantined %+v; want only %s for %q", got, id, reason)
	}
	k := f.s.ks(testQueue)
	raw, err := f.rdb.HGet(f.ctx, k.quarantine(), id).Result()
	if err != nil || !strings.Contains(raw, reason) {
		t.Errorf("dead-letter entry of %s = %q, %v; want its reason", id, raw, err)
	}
	for _, idx := range []string{k.ready(), k.delayed(), k.leases()} {
		if _, err := f.rdb.ZScore(f.ctx, idx, id).Result(); err == nil {
			t.Errorf("%s is still in %s", id, idx)
		}
	}
	st, err := f.s.Stats(f.ctx, testQueue)
	if err != nil {
		t.Fatal(err)
	}
	if st.Quarantined != 1 || st.Finished["quarantined"] != 0 {
		t.Errorf("stats count %d quarantined (finished map %v); want 1, and not as a final state", st.Quarantined, st.Finished)
	}
}

// One bad record never blocks a queue: a claim moves it aside, says why, and leases the next
// promise.
func TestClaimQuarantinesABrokenJobAndTakesTheNext(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefer string // "" takes the plain earliest-deadline path
		breakJ func(f *quarantineFixture, id string)
		reason string
	}{
		{"a ready entry without its job hash", "", func(f *quarantineFixture, id string) {
			f.rdb.Del(f.ctx, f.s.ks(testQueue).job(id))
		}, "job hash missing"},
		{"a job without its deadline", "", func(f *quarantineFixture, id string) {
			f.rdb.HDel(f.ctx, f.s.ks(testQueue).job(id), "deadline")
		}, "field deadline missing"},
		{"a job without its creation time, claimed with an owner preference", "201", func(f *quarantineFixture, id string) {
			f.rdb.HDel(f.ctx, f.s.ks(testQueue).job(id), "created")
		}, "created or deadline missing"},
		{"a job without max_attempts", "", func(f *quarantineFixture, id string) {
			f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(id), "max_attempts", "lots")
		}, "field max_attempts missing or not a number"},
		{"a job whose history is not JSON", "", func(f *quarantineFixture, id string) {
			f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(id), "history", "not json")
		}, "field history is not JSON"},
		{"a job whose targets are not JSON, claimed with an owner preference", "201", func(f *quarantineFixture, id string) {
			f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(id), "targets", "[201")
		}, "field targets is not JSON"},
		// The claim sees a usual job to be whole by one pattern over its values joined; these
		// two are broken jobs that joins without a separator no value holds would let through.
		{"a job whose reasons and targets, joined, read as two one-word lists", "", func(f *quarantineFixture, id string) {
			f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(id), "reasons", "[\"voicemail\"][\"201", "targets", "\"]")
		}, "field reasons is not JSON"},
		{"a job whose attempts, joined with the next number, read as two numbers", "", func(f *quarantineFixture, id string) {
			f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(id), "attempts", "0|3")
		}, "field attempts missing or not a number"},
		{"a job whose reasons the scripts read but Go cannot decode", "", func(f *quarantineFixture, id string) {
			f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(id), "reasons", `{"voicemail":1}`)
		}, "field reasons"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newQuarantineFixture(t)
			bad := f.enqueue(t, request(alice)) // the earlier deadline: claimed first
			r := request(bob)
			r.Deadline = t0.Add(2 * time.Hour)
			good := f.enqueue(t, r)
			tc.breakJ(f, bad.ID)
			got := f.claim(t, ClaimOptions{Prefer: tc.prefer, PreferShare: 0.5})
			if got.ID != good.ID {
				t.Fatalf("claimed %s; want the healthy promise %s", got.ID, good.ID)
			}
			f.assertQuarantined(t, bad.ID, tc.reason)
		})
	}
}

func TestClaimOfAQueueHoldingOnlyABrokenJobIsEmpty(t *testing.T) {
	f := newQuarantineFixture(t)
	bad := f.enqueue(t, request(alice))
	f.rdb.Del(f.ctx, f.s.ks(testQueue).job(bad.ID))
	_, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute})
	if !errors.Is(err, ErrEmpty) {
		t.Fatalf("Claim = %v; want ErrEmpty once the broken job is aside", err)
	}
	f.assertQuarantined(t, bad.ID, "job hash missing")
}

func TestADelayedJobWithoutItsDeadlineIsQuarantinedWhenDue(t *testing.T) {
	f := newQuarantineFixture(t)
	r := request(alice)
	r.NotBefore = t0.Add(time.Minute)
	bad := f.enqueue(t, r)
	f.rdb.HDel(f.ctx, f.s.ks(testQueue).job(bad.ID), "deadline")
	f.clk.Advance(2 * time.Minute)
	if _, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute}); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Claim = %v; want ErrEmpty", err)
	}
	f.assertQuarantined(t, bad.ID, "field deadline missing")
}

// A leased job that lost a field every reclaim reads does not stop the other expired leases
// from coming back.
func TestReclaimQuarantinesABrokenLeaseAndReclaimsTheRest(t *testing.T) {
	f := newQuarantineFixture(t)
	f.enqueue(t, request(alice))
	f.enqueue(t, request(bob))
	first := f.claim(t, ClaimOptions{})
	second := f.claim(t, ClaimOptions{})
	f.rdb.HDel(f.ctx, f.s.ks(testQueue).job(first.ID), "max_attempts")
	f.clk.Advance(2 * time.Minute)
	res, err := f.s.Reclaim(f.ctx, testQueue)
	if err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	if res.Reclaimed != 2 {
		t.Errorf("reclaimed %d; want both expired leases handled", res.Reclaimed)
	}
	if j := f.get(t, second.Ref()); j.State != StatePending {
		t.Errorf("the healthy promise is %s; want pending again", j.State)
	}
	f.assertQuarantined(t, first.ID, "field max_attempts missing")
}
