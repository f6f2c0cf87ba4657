package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callbackd/callbackd/internal/clock"
)

func TestStatsSplitsLeasedIntoDialingAndConnected(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 4; i++ {
		r := request(fmt.Sprintf("+3120123000%d", i))
		r.Deadline = t0.Add(time.Duration(10+i) * time.Minute)
		f.enqueue(t, r)
	}
	later := request(bob)
	later.NotBefore = t0.Add(5 * time.Minute)
	f.enqueue(t, later)
	connected := f.claim(t, ClaimOptions{})
	if _, err := f.s.MarkConnected(f.ctx, connected.Ref(), connected.Lease.Token, t0); err != nil {
		t.Fatal(err)
	}
	f.claim(t, ClaimOptions{})
	f.claim(t, ClaimOptions{})

	st, err := f.s.Stats(f.ctx, testQueue)
	wantErr(t, err, nil)
	want := Stats{Ready: 1, Delayed: 1, Leased: 3, Dialing: 2, Connected: 1, Made: 5}
	if st.Ready != want.Ready || st.Delayed != want.Delayed || st.Leased != want.Leased ||
		st.Dialing != want.Dialing || st.Connected != want.Connected || st.Made != want.Made {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
}

func TestHeadIsTheEarliestDeadlineClaimCouldTake(t *testing.T) {
	type job struct {
		deadline, notBefore time.Duration // offsets from t0; notBefore 0 means due now
		claimed             bool
	}
	tests := []struct {
		name   string
		jobs   []job
		at     time.Duration // clock offset from t0 when Head is asked
		want   time.Duration
		wantOK bool
	}{
		{"empty queue", nil, 0, 0, false},
		{"only a job still on hold", []job{{deadline: time.Hour, notBefore: 10 * time.Minute}}, 0, 0, false},
		{"only a leased job", []job{{deadline: time.Hour, claimed: true}}, 0, 0, false},
		{"the ready job with the earliest deadline", []job{{deadline: 50 * time.Minute}, {deadline: 20 * time.Minute}}, 0, 20 * time.Minute, true},
		{"a held job with an earlier deadline does not count yet",
			[]job{{deadline: 50 * time.Minute}, {deadline: 20 * time.Minute, notBefore: 10 * time.Minute}}, 5 * time.Minute, 50 * time.Minute, true},
		{"a held job whose not-before has come counts before Claim moved it",
			[]job{{deadline: 50 * time.Minute}, {deadline: 20 * time.Minute, notBefore: 10 * time.Minute}}, 10 * time.Minute, 20 * time.Minute, true},
		{"a due held job with a later deadline leaves the ready head",
			[]job{{deadline: 50 * time.Minute}, {deadline: 55 * time.Minute, notBefore: 10 * time.Minute}}, 15 * time.Minute, 50 * time.Minute, true},
		{"a leased job with an earlier deadline is not a candidate",
			[]job{{deadline: 10 * time.Minute, claimed: true}, {deadline: 40 * time.Minute}}, 0, 40 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for i, j := range tt.jobs {
				r := request(fmt.Sprintf("+3120123000%d", i))
				r.Deadline = t0.Add(j.deadline)
				if j.notBefore > 0 {
					r.NotBefore = t0.Add(j.notBefore)
				}
				f.enqueue(t, r)
				if j.claimed {
					f.claim(t, ClaimOptions{})
				}
			}
			f.clk.Set(t0.Add(tt.at))
			before := f.snapshot(t)
			got, ok, err := f.s.Head(f.ctx, testQueue)
			wantErr(t, err, nil)
			if ok != tt.wantOK || (ok && !got.Equal(t0.Add(tt.want))) {
				t.Errorf("Head = %v %v, want %v %v", got, ok, t0.Add(tt.want), tt.wantOK)
			}
			f.assertUnchanged(t, before)
			if ok {
				if j := f.claim(t, ClaimOptions{}); !j.Deadline.Equal(got) {
					t.Errorf("Claim took a job due %v, Head said %v", j.Deadline, got)
				}
			}
		})
	}
	_, _, err := newFixture(t).s.Head(t.Context(), "billing")
	wantErr(t, err, ErrUnknownQueue)
}

// finishAt finishes a new promise for number with outcome at the fake clock's time at.
func finishAt(t *testing.T, f fixture, queue, number string, at time.Time, outcome State) {
	t.Helper()
	f.clk.Set(at)
	r := request(number)
	r.Queue, r.Deadline = queue, at.Add(time.Hour)
	f.enqueue(t, r)
	j, err := f.s.Claim(f.ctx, queue, ClaimOptions{Worker: "w", Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if outcome == StateKept {
		if _, err := f.s.MarkConnected(f.ctx, j.Ref(), j.Lease.Token, at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, outcome, ""); err != nil {
		t.Fatal(err)
	}
}

func TestOutcomesCountWhatFinishedInTheWindow(t *testing.T) {
	f := newFixture(t)
	// t0 is 09:00, the start of a five-minute bucket.
	finishAt(t, f, testQueue, "+31201230001", t0, StateUnreachable)
	finishAt(t, f, testQueue, "+31201230002", t0.Add(time.Hour), StateKept)
	finishAt(t, f, testQueue, "+31201230003", t0.Add(time.Hour+2*time.Minute), StateKept)
	finishAt(t, f, otherQ, "+31201230004", t0.Add(time.Hour+2*time.Minute), StateUnreachable)
	f.clk.Set(t0.Add(time.Hour + 3*time.Minute))

	tests := []struct {
		name        string
		window      time.Duration
		kept, unrch int64
	}{
		{"the last five minutes", 5 * time.Minute, 2, 0},
		{"a window inside the current bucket still counts the whole bucket", time.Minute, 2, 0},
		{"the last half hour", 30 * time.Minute, 2, 0},
		{"a window ending in the bucket after the first finish", 58 * time.Minute, 2, 0},
		{"a window reaching into the bucket of the first finish", 58*time.Minute + time.Millisecond, 2, 1},
		{"a window reaching back exactly to the first finish", time.Hour + 3*time.Minute, 2, 1},
		{"a day", 24 * time.Hour, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.s.Outcomes(f.ctx, testQueue, tt.window)
			wantErr(t, err, nil)
			want := map[State]int64{StateKept: tt.kept, StateLate: 0, StateUnreachable: tt.unrch,
				StateCancelled: 0, StateResolved: 0, StateExpired: 0, StateFailed: 0}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Outcomes(%v) = %v, want %v", tt.window, got, want)
			}
		})
	}
}

func TestOutcomeBucketsExpireAfterTheRetention(t *testing.T) {
	base := newFixture(t)
	clk := clock.NewFake(t0)
	s, err := New(base.rdb, Options{Clock: clk, Queues: []string{testQueue}, Retention: time.Hour})
	wantErr(t, err, nil)
	f := fixture{s: s, clk: clk, rdb: base.rdb, ctx: base.ctx}
	finishAt(t, f, testQueue, alice, t0, StateUnreachable)
	key := f.s.ks(testQueue).window(t0.UnixMilli() / outcomeBucket.Milliseconds())
	ttl, err := f.rdb.PTTL(f.ctx, key).Result()
	wantErr(t, err, nil)
	if ttl <= 0 || ttl > time.Hour+outcomeBucket {
		t.Errorf("bucket %s TTL %v, want at most the retention plus one bucket", key, ttl)
	}
}

func TestOutcomesRefuseABadWindow(t *testing.T) {
	tests := []struct {
		name   string
		queue  string
		window time.Duration
		want   error
	}{
		{"zero window", testQueue, 0, ErrInvalid},
		{"negative window", testQueue, -time.Hour, ErrInvalid},
		{"longer than the retention", testQueue, DefaultRetention + time.Millisecond, ErrInvalid},
		{"unknown queue", "billing", time.Hour, ErrUnknownQueue},
		{"the whole retention is fine", testQueue, DefaultRetention, nil},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.s.Outcomes(f.ctx, tt.queue, tt.window)
			wantErr(t, err, tt.want)
		})
	}
}

func TestScheduleListsPendingPromisesEarliestDeadlineFirst(t *testing.T) {
	f := newFixture(t)
	for i, j := range []struct{ deadline, notBefore time.Duration }{
		{50 * time.Minute, 0},
		{20 * time.Minute, 10 * time.Minute}, // on hold: a retry backoff
		{40 * time.Minute, 0},
		{30 * time.Minute, 0}, // claimed below: not pending
	} {
		r := request(fmt.Sprintf("+3120123000%d", i))
		r.Deadline = t0.Add(j.deadline)
		if j.notBefore > 0 {
			r.NotBefore = t0.Add(j.notBefore)
		}
		f.enqueue(t, r)
	}
	f.claim(t, ClaimOptions{}) // takes the 30-minute promise: earliest due deadline
	before := f.snapshot(t)

	list, total, err := f.s.Schedule(f.ctx, testQueue, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Due{
		{Deadline: t0.Add(20 * time.Minute).UTC(), NotBefore: t0.Add(10 * time.Minute).UTC()},
		{Deadline: t0.Add(40 * time.Minute).UTC()},
		{Deadline: t0.Add(50 * time.Minute).UTC()},
	}
	if total != 3 || len(list) != len(want) {
		t.Fatalf("Schedule = %v (total %d), want %v (total 3)", list, total, want)
	}
	for i := range want {
		if !list[i].Deadline.Equal(want[i].Deadline) || !list[i].NotBefore.Equal(want[i].NotBefore) {
			t.Errorf("entry %d = %+v, want %+v", i, list[i], want[i])
		}
	}
	f.assertUnchanged(t, before)

	cut, total, err := f.s.Schedule(f.ctx, testQueue, 1)
	if err != nil || total != 3 || len(cut) != 2 {
		t.Errorf("with limit 1: %v (total %d, %v); want one due and one held, total 3", cut, total, err)
	}
	_, _, err = f.s.Schedule(f.ctx, testQueue, 0)
	wantErr(t, err, ErrInvalid)
}

func TestWakeupsTellWhenAPromiseBecomesPending(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	wake := f.s.Wakeups(ctx)
	// The subscription is asynchronous: publish until the first wake-up arrives.
	expect := func(what string, do func()) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			do()
			select {
			case <-wake:
				return
			case <-deadline:
				t.Fatalf("no wake-up after %s", what)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	n := 0
	expect("a promise was made", func() {
		n++
		f.enqueue(t, request(fmt.Sprintf("+312012340%02d", n)))
	})
	for len(wake) > 0 {
		<-wake
	}
	j := f.claim(t, ClaimOptions{})
	released := false
	expect("a claimed promise was released", func() {
		if !released {
			_, err := f.s.Release(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now(), "agent did not answer")
			wantErr(t, err, nil)
			released = true
		}
	})
	cancel()
	for range wake { // closes when the context ends
	}
}
