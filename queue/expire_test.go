package queue

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const testMaxAge = 3 * time.Hour

// newExpireFixture is a fixture whose sales queue lets a promise stay open testMaxAge.
func newExpireFixture(t *testing.T) fixture {
	t.Helper()
	f := newFixture(t)
	s, err := New(f.rdb, Options{Clock: f.clk, Queues: []string{testQueue, otherQ},
		MaxOpenAge: map[string]time.Duration{testQueue: testMaxAge}})
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	return f
}

func (f fixture) expire(t *testing.T) ExpireResult {
	t.Helper()
	res, err := f.s.Expire(f.ctx, testQueue)
	if err != nil {
		t.Fatalf("Expire: %v", err)
	}
	return res
}

// A promise open longer than its queue's max open age ends expired, wherever it waits, as any
// finished promise does: out of the open sets, in done, on the outcome stream, counted, its
// dedupe key released. A younger one, or one in another queue, is left as it is.
func TestExpireEndsPromisesOpenLongerThanTheMaxOpenAge(t *testing.T) {
	tests := []struct {
		name   string
		age    time.Duration // how long before the Expire call the promise was made
		setup  func(f fixture, j Job)
		expire bool
	}{
		{name: "due, older than the max age", age: testMaxAge + time.Minute, expire: true},
		{name: "due, exactly the max age", age: testMaxAge, expire: false},
		{name: "due, younger", age: time.Hour, expire: false},
		{name: "waiting for a retry", age: testMaxAge + time.Minute, expire: true, setup: func(f fixture, j Job) {
			c := f.claim(t, ClaimOptions{})
			if _, err := f.s.Retry(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now().Add(10*time.Hour), "busy"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newExpireFixture(t)
			r := request(alice)
			r.Deadline = t0.Add(24 * time.Hour)
			j := f.enqueue(t, r)
			other := request(bob)
			other.Queue = otherQ
			other.Deadline = r.Deadline
			oj := f.enqueue(t, other)
			if tc.setup != nil {
				tc.setup(f, j)
			}
			f.clk.Set(t0.Add(tc.age))
			res := f.expire(t)
			if _, err := f.s.Expire(f.ctx, otherQ); err != nil {
				t.Fatal(err)
			}
			if got := f.get(t, oj.Ref()).State; got != StatePending {
				t.Errorf("the other queue's promise (default max age) is %s, want pending", got)
			}
			got := f.get(t, j.Ref())
			if !tc.expire {
				if got.State != StatePending || len(res.Expired) != 0 {
					t.Fatalf("promise is %s, expired %v; want it left pending", got.State, res.Expired)
				}
				return
			}
			if !slices.Equal(res.Expired, []string{j.ID}) || got.State != StateExpired || got.Outcome != StateExpired {
				t.Fatalf("Expire = %+v, promise %s/%s; want it expired", res, got.State, got.Outcome)
			}
			if last := got.History[len(got.History)-1]; last.Result != string(StateExpired) || !strings.Contains(last.Detail, "max_open_age 3h0m0s") {
				t.Errorf("last history entry %+v, want expired naming the max open age", last)
			}
			f.assertIn(t, j.ID, "done")
			k := f.s.ks(testQueue)
			if _, open := f.zscore(t, k.open(), j.ID); open {
				t.Error("still in the open index")
			}
			if n := f.rdb.Exists(f.ctx, k.dedupe(alice)).Val(); n != 0 {
				t.Error("dedupe key not released")
			}
			out, err := f.s.Outcomes(f.ctx, testQueue, time.Hour)
			wantErr(t, err, nil)
			if out[StateExpired] != 1 {
				t.Errorf("outcomes %v, want one expired (the kept ratio's denominator counts it)", out)
			}
			var finishes []redis.XMessage
			for _, e := range f.rdb.XRange(f.ctx, k.events(), "-", "+").Val() {
				if e.Values["type"] == "expired" {
					finishes = append(finishes, e)
				}
			}
			if len(finishes) != 1 || finishes[0].Values["promise"] != j.ID {
				t.Errorf("expired events %v, want one, for %s", finishes, j.ID)
			}
			// The customer calling again gets a new promise, not the ended one.
			r.Deadline = f.clk.Now().Add(time.Hour)
			if again := f.enqueue(t, r); again.ID == j.ID {
				t.Error("a new request merged into the expired promise")
			}
		})
	}
}

// A callback holding its lease is never cut short: its promise expires only once the lease
// is gone and it is pending again, and a callback that finishes it first settles it normally.
func TestExpireLeavesLeasedPromisesUntilTheLeaseIsGone(t *testing.T) {
	f := newExpireFixture(t)
	r := request(alice)
	r.Deadline = t0.Add(24 * time.Hour)
	dialing := f.enqueue(t, r)
	r2 := request(bob)
	r2.Deadline = r.Deadline.Add(time.Minute)
	connected := f.enqueue(t, r2)

	f.clk.Set(t0.Add(testMaxAge - time.Minute))
	d := f.claim(t, ClaimOptions{Lease: 10 * time.Minute})
	c := f.claim(t, ClaimOptions{Lease: 10 * time.Minute})
	if d.ID != dialing.ID || c.ID != connected.ID {
		t.Fatalf("claimed %s, %s; want %s, %s", d.ID, c.ID, dialing.ID, connected.ID)
	}
	if _, err := f.s.MarkConnected(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now()); err != nil {
		t.Fatal(err)
	}

	f.clk.Advance(5 * time.Minute) // past the max age, leases still held
	if res := f.expire(t); len(res.Expired) != 0 || res.Leased != 2 {
		t.Fatalf("Expire with both leases held = %+v, want nothing expired and 2 leased", res)
	}
	if _, err := f.s.Complete(f.ctx, c.Ref(), c.Lease.Token, StateKept, ""); err != nil {
		t.Fatalf("completing the connected callback after Expire passed it by: %v", err)
	}

	f.clk.Advance(10 * time.Minute) // the dialing lease ran out: Reclaim first, as the dispatcher does
	if _, err := f.s.Reclaim(f.ctx, testQueue); err != nil {
		t.Fatal(err)
	}
	if res := f.expire(t); !slices.Equal(res.Expired, []string{dialing.ID}) || res.Leased != 0 {
		t.Fatalf("Expire after the lease was reclaimed = %+v, want %s expired", res, dialing.ID)
	}
	if got := f.get(t, connected.Ref()).State; got != StateKept {
		t.Errorf("the connected promise is %s, want kept", got)
	}
	if _, open := f.zscore(t, f.s.ks(testQueue).open(), connected.ID); open {
		t.Error("the kept promise is still in the open index")
	}
}

// More leased promises than one script reads do not hide the pending ones behind them.
func TestExpireReadsPastLeasedPromisesInBatches(t *testing.T) {
	f := newExpireFixture(t)
	leased := expireBatch + 20
	for i := range leased + 5 {
		r := request(fmt.Sprintf("+312012%05d", i))
		r.Deadline = t0.Add(24 * time.Hour).Add(time.Duration(i) * time.Second)
		f.enqueue(t, r)
		f.clk.Advance(time.Millisecond)
	}
	for range leased {
		f.claim(t, ClaimOptions{Lease: 24 * time.Hour})
	}
	f.clk.Set(t0.Add(testMaxAge + time.Hour))
	res := f.expire(t)
	if len(res.Expired) != 5 || res.Leased != leased {
		t.Fatalf("Expire = %d expired, %d leased; want 5 and %d", len(res.Expired), res.Leased, leased)
	}
}

// An open-index entry whose job hash is gone is quarantined, not left to fail every pass.
func TestExpireQuarantinesAMissingJob(t *testing.T) {
	f := newQuarantineFixture(t)
	s, err := New(f.rdb, Options{Clock: f.clk, Queues: []string{testQueue, otherQ}, OnQuarantine: f.s.onQuar,
		MaxOpenAge: map[string]time.Duration{testQueue: testMaxAge}})
	wantErr(t, err, nil)
	f.s = s
	j := f.enqueue(t, request(alice))
	f.rdb.Del(f.ctx, f.s.ks(testQueue).job(j.ID))
	f.clk.Advance(testMaxAge + time.Minute)
	if res := f.expire(t); len(res.Expired) != 0 {
		t.Fatalf("Expire = %+v, want nothing expired", res)
	}
	f.assertQuarantined(t, j.ID, "job hash missing")
}

func TestStoreRefusesABadMaxOpenAge(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		ages map[string]time.Duration
		want string
	}{
		{map[string]time.Duration{"nope": time.Hour}, `max open age for "nope", which is not a queue`},
		{map[string]time.Duration{testQueue: 0}, "must be positive"},
	} {
		_, err := New(f.rdb, Options{Queues: []string{testQueue}, MaxOpenAge: tc.ages})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New with max open ages %v = %v, want an error saying %q", tc.ages, err, tc.want)
		}
	}
}
