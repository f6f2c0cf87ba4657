package queue

import (
	"fmt"
	"testing"
	"time"

	"github.com/callbackd/callbackd/internal/clock"
)

// Claim promotes delayed jobs in batches of promoteBatch; however many became due, the one with
// the earliest deadline is the one claimed.
func TestClaimSeesEveryDueDelayedJobBeyondOnePromoteBatch(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < promoteBatch; i++ {
		r := request(fmt.Sprintf("+3120100%04d", i))
		r.NotBefore = t0.Add(time.Minute)
		r.Deadline = t0.Add(50 * time.Minute)
		f.enqueue(t, r)
	}
	r := request(alice)
	r.NotBefore = t0.Add(2 * time.Minute)
	r.Deadline = t0.Add(10 * time.Minute)
	urgent := f.enqueue(t, r)
	f.clk.Advance(3 * time.Minute) // all 101 are due now
	got := f.claim(t, ClaimOptions{})
	if got.ID != urgent.ID {
		t.Errorf("Claim took %s (deadline %v), want the due job %s with the earliest deadline %v",
			got.ID, got.Deadline, urgent.ID, urgent.Deadline)
	}
}

// doc.go: "a change by a worker whose lease was reclaimed ... is refused with ErrStaleToken",
// also when the reclaim was the last attempt and finished the job. A promise cancelled under a
// worker that still holds its lease is a different story: the worker is told the new state.
func TestAWorkerWhoseLeaseWasReclaimedIsToldSoEvenWhenTheJobGaveUp(t *testing.T) {
	t.Run("reclaim of last attempt", func(t *testing.T) {
		f := newFixture(t)
		j := dialledLease(t, f, 1)
		f.clk.Advance(2 * time.Minute)
		if _, err := f.s.Reclaim(f.ctx, testQueue); err != nil {
			t.Fatal(err)
		}
		_, err := f.s.Extend(f.ctx, j.Ref(), j.Lease.Token, time.Minute)
		wantErr(t, err, ErrStaleToken)
	})
	t.Run("cancel while dialing", func(t *testing.T) {
		f := newFixture(t)
		j := leased(t, f, 3)
		if _, err := f.s.Cancel(f.ctx, j.Ref(), ""); err != nil {
			t.Fatal(err)
		}
		// The worker still holds its lease; what changed is the promise: it is told the state.
		_, err := f.s.Extend(f.ctx, j.Ref(), j.Lease.Token, time.Minute)
		wantErr(t, err, ErrWrongState)
	})
}

// After the retention period nothing about a finished promise is left: the hash expires, and
// the periodic Reclaim drops it from the done index, the outcome stream and the event stream
// (which hold the customer's number) even in a queue where nothing else finishes; Stats never counts it.
func TestRetentionAlsoBoundsTheDoneIndexCountAndTheStreams(t *testing.T) {
	base := newFixture(t)
	clk := clock.NewFake(t0)
	s, err := New(base.rdb, Options{Clock: clk, Queues: []string{testQueue}, Retention: 50 * time.Millisecond})
	wantErr(t, err, nil)
	f := fixture{s: s, clk: clk, rdb: base.rdb, ctx: base.ctx}
	j := f.enqueue(t, request(alice))
	if _, err := f.s.Cancel(f.ctx, j.Ref(), ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // Redis expires the hash on its own clock
	clk.Advance(time.Hour)
	// The daemon's periodic maintenance: nothing else happens in this queue.
	if _, err := f.s.Reclaim(f.ctx, testQueue); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Get(f.ctx, j.Ref())
	wantErr(t, err, ErrNotFound)
	st, err := f.s.Stats(f.ctx, testQueue)
	wantErr(t, err, nil)
	if st.Retained != 0 {
		t.Errorf("Stats.Retained = %d, want 0: the only finished job expired", st.Retained)
	}
	if in := f.where(t, j.ID); len(in) != 0 {
		t.Errorf("expired job still indexed in %v", in)
	}
	for _, stream := range []string{f.s.ks(testQueue).base + "outcomes", f.s.EventStreamKey(testQueue)} {
		msgs, _ := f.rdb.XRange(f.ctx, stream, "-", "+").Result()
		for _, m := range msgs {
			if m.Values["number"] == alice {
				t.Errorf("%s still holds the number %s past the retention period", stream, alice)
			}
		}
	}
}

// A request merged into a promise that is on hold (a Retry backoff, a Release until calling
// hours open) leaves the hold as it is: the promise does not become due at once.
func TestAMergeDoesNotCutAHoldShort(t *testing.T) {
	f := newFixture(t)
	j := leased(t, f, 3)
	later := t0.Add(40 * time.Minute)
	if _, err := f.s.Release(f.ctx, j.Ref(), j.Lease.Token, later, "calling hours closed"); err != nil {
		t.Fatal(err)
	}
	f.assertIn(t, j.ID, "delayed")
	r := request(alice)
	r.Reason = ReasonOffer
	if _, res, err := f.s.Enqueue(f.ctx, r); err != nil || !res.Merged {
		t.Fatalf("Enqueue = %+v, %v; want a merge", res, err)
	}
	if got := f.get(t, j.Ref()); got.NotBefore.Before(later) {
		t.Errorf("merge moved not-before from %v to %v; the job is due now", later, got.NotBefore)
	}
	f.assertIn(t, j.ID, "delayed")
}
