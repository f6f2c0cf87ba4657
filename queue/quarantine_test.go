package queue

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

// reclaimBoth lets the leases run out and reclaims: the broken lease and the healthy one
// are both handled, and the healthy promise is pending again.
func (f *quarantineFixture) reclaimBoth(t *testing.T, healthy Ref) {
	t.Helper()
	f.clk.Advance(2 * time.Minute)
	res, err := f.s.Reclaim(f.ctx, testQueue)
	if err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	if res.Reclaimed != 2 {
		t.Errorf("reclaimed %d; want both expired leases handled", res.Reclaimed)
	}
	if j := f.get(t, healthy); j.State != StatePending {
		t.Errorf("the healthy promise is %s; want pending again", j.State)
	}
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
// A leased job whose state Reclaim cannot read is quarantined too, not dropped from the leases
// index into no index at all (a promise nobody would ever call back, nor see set aside).
func TestReclaimQuarantinesABrokenLeaseAndReclaimsTheRest(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		breakJ       func(f *quarantineFixture, id string)
	}{
		{"max_attempts missing", "field max_attempts missing", func(f *quarantineFixture, id string) {
			f.rdb.HDel(f.ctx, f.s.ks(testQueue).job(id), "max_attempts")
		}},
		{"state missing", "field state", func(f *quarantineFixture, id string) {
			f.rdb.HDel(f.ctx, f.s.ks(testQueue).job(id), "state")
		}},
		{"state unknown", "field state", func(f *quarantineFixture, id string) {
			f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(id), "state", "exploded")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newQuarantineFixture(t)
			f.enqueue(t, request(alice))
			f.enqueue(t, request(bob))
			first := f.claim(t, ClaimOptions{})
			second := f.claim(t, ClaimOptions{})
			tc.breakJ(f, first.ID)
			f.reclaimBoth(t, second.Ref())
			f.assertQuarantined(t, first.ID, tc.reason)
		})
	}
}

// A job hash that a read cannot decode is skipped by List and Page and named in their error,
// beside the jobs that could be read (as ReadEvents does with an entry): one broken record
// must not hide every other promise of its queue. Paging still visits every readable job.
func TestListAndPageSkipAJobTheyCannotDecode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		field  string
		value  string
		reason string
	}{
		{"a deadline that is not a number", "deadline", "soon", "field deadline"},
		{"reasons that are not JSON", "reasons", "[voicemail", "field reasons"},
		{"a malformed history entry", "h:1", "garbage", "field h:1"},
		{"a history field without a number", "h:x", "1|claimed", "field h:x"},
		{"a job key that is not a hash", "", "not a hash", "WRONGTYPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newQuarantineFixture(t)
			var good []string
			var bad Job
			for i, n := range []string{alice, bob, "+31201234503"} {
				r := request(n)
				r.Deadline = t0.Add(time.Duration(i+1) * time.Hour)
				j := f.enqueue(t, r)
				if i == 1 {
					bad = j
				} else {
					good = append(good, j.ID)
				}
			}
			if tc.field == "" {
				f.rdb.Del(f.ctx, f.s.ks(testQueue).job(bad.ID))
				f.rdb.Set(f.ctx, f.s.ks(testQueue).job(bad.ID), tc.value, 0)
			} else {
				f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(bad.ID), tc.field, tc.value)
			}
			before := f.snapshot(t)
			named := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrSkipped) || !strings.Contains(err.Error(), bad.ID) || !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("%s error = %v; want ErrSkipped naming %s and %q", what, err, bad.ID, tc.reason)
				}
			}
			ids := func(jobs []Job) []string {
				var out []string
				for _, j := range jobs {
					out = append(out, j.ID)
				}
				return out
			}
			jobs, err := f.s.List(f.ctx, testQueue, ListOptions{})
			named("List", err)
			if got := ids(jobs); strings.Join(got, ",") != strings.Join(good, ",") {
				t.Errorf("List = %v; want the readable jobs %v", got, good)
			}
			jobs, next, err := f.s.Page(f.ctx, testQueue, PageOptions{})
			named("Page", err)
			if got := ids(jobs); strings.Join(got, ",") != strings.Join(good, ",") || next.ID != "" {
				t.Errorf("Page = %v next %v; want the readable jobs %v and no next page", got, next, good)
			}
			// One job a page: the broken one takes its place in the order, so the page holding
			// it is short, but the pages after it still come.
			var paged []string
			var after PagePos
			for pages := 0; ; pages++ {
				if pages > 5 {
					t.Fatal("paging does not end")
				}
				jobs, next, _ := f.s.Page(f.ctx, testQueue, PageOptions{Limit: 1, After: after})
				paged = append(paged, ids(jobs)...)
				if next.ID == "" {
					break
				}
				after = next
			}
			if strings.Join(paged, ",") != strings.Join(good, ",") {
				t.Errorf("paging one by one visited %v; want %v", paged, good)
			}
			f.assertUnchanged(t, before)
			if got := f.reported(); len(got) != 0 {
				t.Errorf("a read quarantined %+v; want nothing changed", got)
			}
		})
	}
}

// What a broken field holds is quoted in the error, and so in the API's answer and, for a job
// a claim leases, in the quarantine log line: a phone number in it is masked there like
// everywhere else.
func TestADecodeErrorMasksTheNumbersItQuotes(t *testing.T) {
	for _, tc := range []struct {
		name, field, value, reason string
		claimed                    bool // a claim leases it, then sets it aside
	}{
		{"a history entry that is a bare number", "h:1", "+31201234599", "field h:1", false},
		{"a history entry whose time is not a number", "h:1", "x+31201234599|claimed", "field h:1", false},
		{"a history field name that is not a number", "h:x31201234599", "1|claimed", "field h:x", false},
		{"a hold-until that is not a number", "hold_until", "+31201234599x", "field hold_until", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newQuarantineFixture(t)
			bad := f.enqueue(t, request(alice))
			f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(bad.ID), tc.field, tc.value)
			_, err := f.s.Get(f.ctx, bad.Ref())
			if err == nil || !strings.Contains(err.Error(), tc.reason) || strings.Contains(err.Error(), "1234599") {
				t.Errorf("Get error = %v; want one naming %q with the number masked", err, tc.reason)
			}
			_, err = f.s.List(f.ctx, testQueue, ListOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.reason) || strings.Contains(err.Error(), "1234599") {
				t.Errorf("List error = %v; want one naming %q with the number masked", err, tc.reason)
			}
			if !tc.claimed {
				return
			}
			if _, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute}); !errors.Is(err, ErrEmpty) {
				t.Fatalf("Claim = %v; want ErrEmpty once the broken job is aside", err)
			}
			got := f.reported()
			if len(got) != 1 || strings.Contains(got[0].Reason, "1234599") {
				t.Errorf("quarantined %+v; want the one job, its reason with the number masked", got)
			}
			f.assertQuarantined(t, bad.ID, tc.reason)
		})
	}
}

// A job key that holds something other than a hash (a string written over it by hand) is a
// broken record like a missing hash: the claim, reclaim or expiry that meets it sets it
// aside and goes on, and it stops neither the reads of the queue nor a customer's export or
// erasure. Before, a claim took it off the ready set and then failed, leaving the promise in
// no index and nowhere in the dead letters.
func TestAJobKeyOfTheWrongTypeIsQuarantined(t *testing.T) {
	for _, tc := range []struct {
		name string
		// meet makes the store meet the broken job, which is the earliest of the queue, and
		// answers the healthy promise it must still have handled.
		meet func(t *testing.T, f *quarantineFixture, bad, good Job) (handled string)
	}{
		{"claimed", func(t *testing.T, f *quarantineFixture, bad, good Job) string {
			return f.claim(t, ClaimOptions{}).ID
		}},
		{"claimed with an owner preference", func(t *testing.T, f *quarantineFixture, bad, good Job) string {
			return f.claim(t, ClaimOptions{Prefer: "201", PreferShare: 0.5}).ID
		}},
		{"promoted from delayed", func(t *testing.T, f *quarantineFixture, bad, good Job) string {
			k := f.s.ks(testQueue)
			f.rdb.ZRem(f.ctx, k.ready(), bad.ID)
			f.rdb.ZAdd(f.ctx, k.delayed(), redis.Z{Score: float64(millis(t0)), Member: bad.ID})
			return f.claim(t, ClaimOptions{}).ID
		}},
		{"reclaimed", func(t *testing.T, f *quarantineFixture, bad, good Job) string {
			k := f.s.ks(testQueue)
			f.rdb.ZRem(f.ctx, k.ready(), bad.ID)
			f.rdb.ZAdd(f.ctx, k.leases(), redis.Z{Score: float64(millis(t0)), Member: bad.ID})
			c := f.claim(t, ClaimOptions{})
			f.reclaimBoth(t, c.Ref())
			return c.ID
		}},
		{"expired", func(t *testing.T, f *quarantineFixture, bad, good Job) string {
			f.clk.Advance(15 * 24 * time.Hour)
			res, err := f.s.Expire(f.ctx, testQueue)
			if err != nil {
				t.Fatalf("Expire: %v", err)
			}
			if len(res.Expired) != 1 {
				t.Fatalf("expired %v; want the healthy promise", res.Expired)
			}
			return res.Expired[0]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newQuarantineFixture(t)
			bad := f.enqueue(t, request(alice))
			r := request(bob)
			r.Deadline = t0.Add(2 * time.Hour)
			good := f.enqueue(t, r)
			k := f.s.ks(testQueue)
			f.rdb.Del(f.ctx, k.job(bad.ID))
			f.rdb.Set(f.ctx, k.job(bad.ID), "not a hash", 0)
			if _, err := f.s.ExportCustomer(f.ctx, bob); err != nil {
				t.Errorf("ExportCustomer of another number: %v", err)
			}
			if got := tc.meet(t, f, bad, good); got != good.ID {
				t.Fatalf("handled %s; want the healthy promise %s", got, good.ID)
			}
			f.assertQuarantined(t, bad.ID, "not a hash")
			if _, err := f.s.EraseCustomer(f.ctx, bob); err != nil {
				t.Errorf("EraseCustomer of another number: %v", err)
			}
		})
	}
}

// The reads that size and order a queue for the dispatcher and the metrics (Stats, Schedule,
// Head) read a few fields of the jobs they meet; a job key of another type among those,
// before a claim or reclaim sets it aside, must not make them fail for the whole queue.
func TestQueueReadsGoOnPastAJobKeyOfTheWrongType(t *testing.T) {
	for _, index := range []string{"ready", "delayed", "leases"} {
		t.Run(index, func(t *testing.T) {
			f := newQuarantineFixture(t)
			bad := f.enqueue(t, request(alice))
			r := request(bob)
			r.Deadline = t0.Add(2 * time.Hour)
			good := f.enqueue(t, r)
			k := f.s.ks(testQueue)
			f.rdb.ZRem(f.ctx, k.ready(), bad.ID)
			key := map[string]string{"ready": k.ready(), "delayed": k.delayed(), "leases": k.leases()}[index]
			f.rdb.ZAdd(f.ctx, key, redis.Z{Score: float64(millis(t0)), Member: bad.ID})
			f.rdb.Del(f.ctx, k.job(bad.ID))
			f.rdb.Set(f.ctx, k.job(bad.ID), "not a hash", 0)
			if _, err := f.s.Stats(f.ctx, testQueue); err != nil {
				t.Errorf("Stats: %v", err)
			}
			if list, _, err := f.s.Schedule(f.ctx, testQueue, 10); err != nil {
				t.Errorf("Schedule: %v", err)
			} else if !slices.ContainsFunc(list, func(d Due) bool { return d.ID == good.ID }) {
				t.Errorf("Schedule = %+v; want the healthy promise in it", list)
			}
			if _, _, err := f.s.Head(f.ctx, testQueue); err != nil {
				t.Errorf("Head: %v", err)
			}
		})
	}
}

// An idempotency record that names a promise but not its queue (written by hand, or half
// written) is an error naming the record, not a reference to a promise in no queue that
// the caller would then look up as if the client had named an unknown queue.
func TestAHalfWrittenIdempotencyRecordIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []any
		want   string // in the error; "" for the conflict of a key still being served
	}{
		{"a promise id without its queue", []any{"fingerprint", "a", "id", "01JAAAAAAAAAAAAAAAAAAAAAAA"}, "no queue"},
		{"a queue without its promise id (still being served)", []any{"fingerprint", "a", "queue", testQueue}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			keys := NewIdempotency(f.rdb, "")
			f.rdb.HSet(f.ctx, keys.key("crm", "k1"), tc.fields...)
			before := f.snapshot(t)
			ref, isNew, err := keys.Claim(f.ctx, "crm", "k1", "a", time.Hour)
			if tc.want == "" {
				if !errors.Is(err, ErrIdempotencyConflict) {
					t.Errorf("Claim = %v %v %v; want ErrIdempotencyConflict", ref, isNew, err)
				}
			} else if err == nil || isNew || ref != (Ref{}) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), keys.key("crm", "k1")) || errors.Is(err, ErrIdempotencyConflict) {
				t.Errorf("Claim = %v %v %v; want an error naming the record and %q", ref, isNew, err, tc.want)
			}
			f.assertUnchanged(t, before)
		})
	}
}
