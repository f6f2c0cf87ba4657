package queue

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// assertPreferIndex checks that the per-target index of the queue (for:<target>) holds exactly
// the ready jobs naming each target, scored by their deadline: what Claim's owner preference
// reads instead of the jobs.
func assertPreferIndex(t *testing.T, f fixture, step string) {
	t.Helper()
	k := f.s.ks(testQueue)
	want := map[string][]string{}
	ready, err := f.rdb.ZRangeWithScores(f.ctx, k.ready(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range ready {
		id := z.Member.(string)
		j := f.get(t, Ref{Queue: testQueue, ID: id})
		for _, tg := range j.Targets {
			want[k.forTarget(tg)] = append(want[k.forTarget(tg)], fmt.Sprintf("%s@%d", id, int64(z.Score)))
		}
	}
	got := map[string][]string{}
	keys, err := f.rdb.Keys(f.ctx, k.forTarget("*")).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		zs, err := f.rdb.ZRangeWithScores(f.ctx, key, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range zs {
			got[key] = append(got[key], fmt.Sprintf("%s@%d", z.Member, int64(z.Score)))
		}
	}
	for _, m := range []map[string][]string{want, got} {
		for _, v := range m {
			sort.Strings(v)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after %s the per-target index is\n  %v\nwant\n  %v", step, got, want)
	}
}

// Every change that moves a job into or out of the ready set keeps the per-target index with it.
func TestThePerTargetIndexFollowsTheReadySet(t *testing.T) {
	f := newFixture(t)
	mk := func(number, target string, deadline time.Duration) Job {
		r := request(number)
		r.Target, r.Deadline = target, t0.Add(deadline)
		return f.enqueue(t, r)
	}
	a := mk("+31201230001", "201", 10*time.Minute)
	b := mk("+31201230002", "202", 20*time.Minute)
	c := mk("+31201230003", "", 30*time.Minute)
	assertPreferIndex(t, f, "three promises made, one without a target")

	merged := request(c.Number)
	merged.Target, merged.Deadline = "203", t0.Add(5*time.Minute)
	f.enqueue(t, merged)
	merged = request(a.Number)
	merged.Target, merged.Deadline = "202", t0.Add(8*time.Minute)
	f.enqueue(t, merged)
	assertPreferIndex(t, f, "merges adding targets and moving deadlines")

	got := f.claim(t, ClaimOptions{Prefer: "202"})
	assertPreferIndex(t, f, "a claim")
	if _, err := f.s.Release(f.ctx, got.Ref(), got.Lease.Token, time.Time{}, "agent busy"); err != nil {
		t.Fatal(err)
	}
	assertPreferIndex(t, f, "a release, due at once")

	got = f.claim(t, ClaimOptions{})
	if _, err := f.s.Retry(f.ctx, got.Ref(), got.Lease.Token, t0.Add(time.Minute), "no answer"); err != nil {
		t.Fatal(err)
	}
	assertPreferIndex(t, f, "a retry a minute on (delayed)")
	f.clk.Advance(time.Minute)
	got = f.claim(t, ClaimOptions{Prefer: "201"})
	assertPreferIndex(t, f, "a claim that promoted the delayed job")
	if _, err := f.s.Cancel(f.ctx, got.Ref(), "by hand"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Reschedule(f.ctx, b.Ref(), Window{NotBefore: f.clk.Now().Add(time.Hour), Deadline: f.clk.Now().Add(2 * time.Hour)}, "tomorrow"); err != nil {
		t.Fatal(err)
	}
	assertPreferIndex(t, f, "a cancel of a leased job and a reschedule out of ready")
	if _, err := f.s.Reschedule(f.ctx, b.Ref(), Window{Deadline: f.clk.Now().Add(3 * time.Hour)}, "today after all"); err != nil {
		t.Fatal(err)
	}
	assertPreferIndex(t, f, "a reschedule back into ready")

	pending, err := f.s.List(f.ctx, testQueue, ListOptions{States: []State{StatePending}})
	if err != nil || len(pending) == 0 {
		t.Fatalf("List pending = %v, %v", pending, err)
	}
	if _, err := f.s.Cancel(f.ctx, pending[0].Ref(), ""); err != nil {
		t.Fatal(err)
	}
	assertPreferIndex(t, f, "a cancel of a pending job")
	if _, err := f.s.EraseCustomer(f.ctx, b.Number); err != nil {
		t.Fatal(err)
	}
	assertPreferIndex(t, f, "an erasure")
	f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(pending[1%len(pending)].ID), "deadline", "garbage")
	f.clk.Advance(time.Second)
	for {
		if _, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Prefer: "201"}.withWorker()); err != nil {
			break
		}
	}
	assertPreferIndex(t, f, "claims that quarantined a broken job and emptied the queue")
	if keys := f.rdb.Keys(f.ctx, f.s.ks(testQueue).forTarget("*")).Val(); len(keys) != 0 {
		t.Errorf("with nothing ready, index keys %v are left", strings.Join(keys, " "))
	}
}

// A ready job made before the per-target index existed is indexed by the sweep, once, so its
// owner's claim finds it. A large ready set is indexed a batch of 1000 a sweep, each batch
// starting 200 before where the last one ended, so jobs claimed between two sweeps (which
// shift every rank down) leave none unindexed.
func TestTheSweepIndexesReadyJobsOlderThanTheIndex(t *testing.T) {
	for _, tc := range []struct {
		name          string
		jobs, between int // ready jobs made before the index; claimed after the first sweep
		sweeps        int // sweeps until the whole ready set is indexed
	}{
		{"a few jobs, one sweep", 5, 0, 1},
		{"2500 jobs, claims between the sweeps", 2500, 150, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			for i := 0; i < tc.jobs; i++ {
				r := request(fmt.Sprintf("+312012%05d", i))
				r.Deadline = t0.Add(10*time.Minute + time.Duration(i)*time.Second)
				f.enqueue(t, r)
			}
			k := f.s.ks(testQueue)
			f.rdb.Del(f.ctx, k.forTarget("201")) // as an older version left them
			for sweep := 1; ; sweep++ {
				if _, err := f.s.Reclaim(f.ctx, testQueue); err != nil {
					t.Fatal(err)
				}
				if sweep == 1 {
					for i := 0; i < tc.between; i++ {
						f.claim(t, ClaimOptions{})
					}
				}
				if v := f.rdb.Get(f.ctx, k.base+"for-indexed").Val(); v == "all" {
					if sweep != tc.sweeps {
						t.Errorf("indexed after %d sweeps, want %d", sweep, tc.sweeps)
					}
					break
				}
				if sweep > tc.sweeps {
					t.Fatalf("not indexed after %d sweeps", sweep)
				}
			}
			assertPreferIndex(t, f, "the sweeps")
		})
	}
}

func (o ClaimOptions) withWorker() ClaimOptions {
	o.Worker, o.Lease = "w1", time.Minute
	return o
}
