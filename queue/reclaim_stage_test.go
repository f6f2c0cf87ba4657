package queue

import (
	"testing"
	"time"
)

// A lease that expires costs the customer an attempt only when its claim had got as far as
// ringing them: a crash while only the agent's phone rang gives the promise back untouched, and
// a crash loop still never rings anyone more than max_attempts times.
func TestReclaimChargesAnAttemptOnlyWhenTheCustomerWasDialled(t *testing.T) {
	tests := []struct {
		name         string
		maxAttempts  int
		dialled      bool
		wantState    State
		wantAttempts int
		wantReleased int
		wantGaveUp   int
	}{
		{name: "agent rung only", maxAttempts: 3, wantState: StatePending, wantAttempts: 0, wantReleased: 1},
		{name: "agent rung only, on the last attempt", maxAttempts: 1, wantState: StatePending, wantAttempts: 0, wantReleased: 1},
		{name: "customer dialled", maxAttempts: 3, dialled: true, wantState: StatePending, wantAttempts: 1},
		{name: "customer dialled on the last attempt", maxAttempts: 1, dialled: true, wantState: StateUnreachable, wantAttempts: 1, wantGaveUp: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			j := leased(t, f, tt.maxAttempts)
			if tt.dialled {
				got, err := f.s.MarkDialled(f.ctx, j.Ref(), j.Lease.Token)
				wantErr(t, err, nil)
				if !got.DialledAt.Equal(t0) {
					t.Errorf("DialledAt = %v, want the claim's clock %v", got.DialledAt, t0)
				}
			}
			f.clk.Advance(2 * time.Minute)
			res, err := f.s.Reclaim(f.ctx, testQueue)
			wantErr(t, err, nil)
			if res.Reclaimed != 1 || res.Released != tt.wantReleased || res.GaveUp != tt.wantGaveUp {
				t.Errorf("Reclaim = %+v, want 1 reclaimed, %d released, %d gave up", res, tt.wantReleased, tt.wantGaveUp)
			}
			got := f.get(t, j.Ref())
			if got.State != tt.wantState || got.Attempts != tt.wantAttempts {
				t.Errorf("after Reclaim: state %s attempts %d, want %s with %d", got.State, got.Attempts, tt.wantState, tt.wantAttempts)
			}
			if got.State.Open() && !got.DialledAt.IsZero() {
				t.Errorf("DialledAt = %v after the claim ended; the next claim must start from the agent again", got.DialledAt)
			}
			_, err = f.s.Extend(f.ctx, j.Ref(), j.Lease.Token, time.Minute)
			wantErr(t, err, ErrStaleToken)
		})
	}
}

// Every claim starts from the agent again: the previous claim's customer dial does not make a
// crash of the next one, while it only rings its agent, cost an attempt.
func TestEachClaimStartsWithoutTheCustomerDialled(t *testing.T) {
	f := newFixture(t)
	j := leased(t, f, 3)
	if _, err := f.s.MarkDialled(f.ctx, j.Ref(), j.Lease.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Retry(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now(), "busy"); err != nil {
		t.Fatal(err)
	}
	again := f.claim(t, ClaimOptions{})
	if !again.DialledAt.IsZero() {
		t.Fatalf("a fresh claim reads DialledAt %v", again.DialledAt)
	}
	f.clk.Advance(2 * time.Minute)
	if _, err := f.s.Reclaim(f.ctx, testQueue); err != nil {
		t.Fatal(err)
	}
	if got := f.get(t, j.Ref()); got.Attempts != 1 {
		t.Errorf("attempts %d after a dialled retry and an agent-only crash, want 1", got.Attempts)
	}
}

func TestMarkDialledIsFenced(t *testing.T) {
	f := newFixture(t)
	j := leased(t, f, 3)
	_, err := f.s.MarkDialled(f.ctx, j.Ref(), j.Lease.Token+1)
	wantErr(t, err, ErrStaleToken)
	if _, err := f.s.MarkConnected(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.MarkDialled(f.ctx, j.Ref(), j.Lease.Token)
	wantErr(t, err, ErrWrongState)
}

// A daemon whose own callback still runs says so: Redis, not the callback, was gone, and taking
// the lease back would re-queue a promise whose customer may be talking to an agent.
func TestReclaimLeavesAloneTheLeasesItsCallerStillRuns(t *testing.T) {
	f := newFixture(t)
	mine := dialledLease(t, f, 3)
	f.enqueue(t, request(bob))
	dead := f.claim(t, ClaimOptions{Worker: "dead"})
	f.clk.Advance(2 * time.Minute)
	res, err := f.s.ReclaimExcept(f.ctx, testQueue, []string{mine.ID})
	wantErr(t, err, nil)
	if res.Reclaimed != 1 {
		t.Errorf("Reclaim = %+v, want only the dead worker's lease back", res)
	}
	if got := f.get(t, dead.Ref()); got.State != StatePending {
		t.Errorf("the dead worker's promise is %s, want pending again", got.State)
	}
	if _, err := f.s.Extend(f.ctx, mine.Ref(), mine.Lease.Token, time.Minute); err != nil {
		t.Errorf("the live callback cannot renew its lease once Redis is back: %v", err)
	}
}
