package queue

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// holdQueue enqueues three due jobs created at t0 and returns their ids by name:
//
//	"anna"  owner 201, deadline t0+60m (with share 0.5 its window ends at t0+30m)
//	"ben"   owner 305, also named for 500 by a merged request, deadline t0+90m (window to t0+45m)
//	"none"  no owner, deadline t0+120m: never anyone's to hold
func holdQueue(t *testing.T, f fixture) map[string]string {
	t.Helper()
	anna := request("+31201230001")
	anna.Target, anna.Deadline = "201", t0.Add(60*time.Minute)
	ben := request("+31201230002")
	ben.Target, ben.Deadline = "305", t0.Add(90*time.Minute)
	benAgain := ben
	benAgain.Target = "500"
	none := request("+31201230003")
	none.Target, none.Reason, none.Deadline = "", ReasonAPI, t0.Add(120*time.Minute)
	ids := map[string]string{"anna": f.enqueue(t, anna).ID, "ben": f.enqueue(t, ben).ID, "none": f.enqueue(t, none).ID}
	f.enqueue(t, benAgain)
	return ids
}

func TestClaimLeavesHeldOwnersTheirJobs(t *testing.T) {
	tests := []struct {
		name   string
		prefer string
		held   []string
		share  float64
		at     time.Duration // clock offset from t0 at claim time
		want   string
	}{
		{"nobody held: earliest deadline", "999", nil, 0.5, 0, "anna"},
		{"a non-owner skips a held job", "999", []string{"201"}, 0.5, 0, "ben"},
		{"every held job is skipped", "999", []string{"201", "305"}, 0.5, 0, "none"},
		{"a held job is taken once its window has passed", "999", []string{"201", "305"}, 0.5, 31 * time.Minute, "anna"},
		{"a job whose owner is not held is taken", "999", []string{"777"}, 0.5, 0, "anna"},
		{"share zero holds until the deadline", "999", []string{"201"}, 0, 59 * time.Minute, "ben"},
		{"the owner takes their own job first", "305", []string{"201"}, 0.5, 0, "ben"},
		{"the owner takes their own job ahead of an earlier unheld one", "305", nil, 0.5, 0, "ben"},
		{"a job naming the claimer is not left to its held owner", "500", []string{"305"}, 0.5, 0, "ben"},
		{"without a preference holds still apply", "", []string{"201"}, 0.5, 0, "ben"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ids := holdQueue(t, f)
			f.clk.Set(t0.Add(tt.at))
			j := f.claim(t, ClaimOptions{Prefer: tt.prefer, PreferShare: tt.share, Held: tt.held})
			if j.ID != ids[tt.want] {
				t.Errorf("claimed the job owned by %q (targets %v), want %q's", j.Owner, j.Targets, tt.want)
			}
		})
	}
}

func TestClaimWithEveryDueJobHeldSaysWhenTheFirstHoldEnds(t *testing.T) {
	f := newFixture(t)
	holdQueue(t, f)
	none, err := f.s.List(f.ctx, testQueue, ListOptions{})
	wantErr(t, err, nil)
	for _, j := range none {
		if j.Owner == "" {
			if _, err := f.s.Cancel(f.ctx, j.Ref(), "test: only owned jobs left"); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := f.snapshot(t)
	_, err = f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute, Prefer: "999",
		PreferShare: 0.5, Held: []string{"201", "305"}})
	wantErr(t, err, ErrEmpty)
	var empty *EmptyError
	if !errors.As(err, &empty) {
		t.Fatalf("error %v is not an *EmptyError", err)
	}
	until, ok := HoldEnds(err)
	if want := t0.Add(30 * time.Minute); !ok || !until.Equal(want) || !empty.HeldUntil.Equal(want) {
		t.Errorf("HoldEnds = %v %v, want %v: the end of anna's window, the earlier of the two", until, ok, want)
	}
	f.assertUnchanged(t, before)

	f.clk.Set(until)
	if j := f.claim(t, ClaimOptions{Prefer: "999", PreferShare: 0.5, Held: []string{"201", "305"}}); j.Owner != "201" {
		t.Errorf("at the end of the hold claimed owner %q's job, want 201's", j.Owner)
	}
}

func TestClaimOnAnEmptyQueueIsNoHold(t *testing.T) {
	f := newFixture(t)
	_, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute, Held: []string{"201"}})
	wantErr(t, err, ErrEmpty)
	if until, ok := HoldEnds(err); ok {
		t.Errorf("HoldEnds = %v on an empty queue, want false", until)
	}
	if _, ok := HoldEnds(ErrInvalid); ok {
		t.Errorf("HoldEnds reports a hold for an unrelated error")
	}
}

// Claim looks at the preferWindow earliest due jobs only, for holds as for preferences: a
// claimer can be told to wait even though an unheld job lies further down the queue. The
// holds end by themselves, so the wait is bounded by the earliest of them.
func TestClaimLooksForAnUnheldJobOnlyAmongTheEarliestDue(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < preferWindow; i++ {
		r := request(fmt.Sprintf("+3120200%04d", i))
		r.Deadline = t0.Add(time.Duration(30+i) * time.Minute)
		f.enqueue(t, r) // target 201
	}
	free := request(bob)
	free.Target, free.Deadline = "305", t0.Add(3*time.Hour)
	f.enqueue(t, free)
	_, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute, Held: []string{"201"}})
	if _, ok := HoldEnds(err); !ok {
		t.Fatalf("Claim = %v, want ErrEmpty with the end of a hold", err)
	}
}

func TestClaimRefusesBadHeldOwners(t *testing.T) {
	tests := []struct {
		name string
		held []string
	}{
		{"empty owner", []string{"201", ""}},
		{"control character", []string{"20\x001"}},
		{"too many", make([]string, maxHeld+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.enqueue(t, request(alice))
			before := f.snapshot(t)
			_, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w", Lease: time.Minute, Held: tt.held})
			wantErr(t, err, ErrInvalid)
			f.assertUnchanged(t, before)
		})
	}
}

// A job made in business time carries its own hold-until, which wins over the claim's share:
// a promise made at 17:00 whose owner's window ends at 09:15 the next morning is still held
// overnight, although half of its wall time has long passed.
func TestClaimHonoursTheJobsOwnHoldUntil(t *testing.T) {
	tests := []struct {
		name string
		at   time.Duration
		want string
	}{
		{"held before its hold-until although the share has passed", 50 * time.Minute, "other"},
		{"taken once its hold-until has passed", 56 * time.Minute, "held"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			held := request("+31201230001")
			held.Target, held.Deadline, held.HoldUntil = "201", t0.Add(60*time.Minute), t0.Add(55*time.Minute)
			other := request("+31201230002")
			other.Target, other.Deadline = "", t0.Add(90*time.Minute)
			ids := map[string]string{"held": f.enqueue(t, held).ID, "other": f.enqueue(t, other).ID}
			if got := f.get(t, Ref{Queue: held.Queue, ID: ids["held"]}).HoldUntil; !got.Equal(held.HoldUntil) {
				t.Fatalf("stored hold-until %s, want %s", got, held.HoldUntil)
			}
			f.clk.Set(t0.Add(tt.at))
			j := f.claim(t, ClaimOptions{Prefer: "999", PreferShare: 0.5, Held: []string{"201"}})
			if j.ID != ids[tt.want] {
				t.Errorf("claimed %s, want the %q job", j.ID, tt.want)
			}
		})
	}
}

func TestEnqueueRefusesAHoldAfterTheDeadline(t *testing.T) {
	f := newFixture(t)
	r := request("+31201230001")
	r.Deadline, r.HoldUntil = t0.Add(time.Hour), t0.Add(2*time.Hour)
	if _, _, err := f.s.Enqueue(f.ctx, r); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}
