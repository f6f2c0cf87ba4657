package queue

import (
	"strings"
	"testing"
	"time"
)

// TestTransitions is the state machine of doc.go as a table: every change tried from every
// kind of state, with the state it leads to or the error that refuses it.
func TestTransitions(t *testing.T) {
	type op func(f fixture, ref Ref, token int64) (Job, error)
	ops := map[string]op{
		"MarkConnected": func(f fixture, ref Ref, tok int64) (Job, error) {
			return f.s.MarkConnected(f.ctx, ref, tok, t0.Add(time.Minute))
		},
		"Extend": func(f fixture, ref Ref, tok int64) (Job, error) { return f.s.Extend(f.ctx, ref, tok, time.Minute) },
		"Complete unreachable": func(f fixture, ref Ref, tok int64) (Job, error) {
			return f.s.Complete(f.ctx, ref, tok, StateUnreachable, "")
		},
		"Complete kept": func(f fixture, ref Ref, tok int64) (Job, error) { return f.s.Complete(f.ctx, ref, tok, StateKept, "") },
		"Retry":         func(f fixture, ref Ref, tok int64) (Job, error) { return f.s.Retry(f.ctx, ref, tok, t0, "busy") },
		"Release": func(f fixture, ref Ref, tok int64) (Job, error) {
			return f.s.Release(f.ctx, ref, tok, t0, "agent away")
		},
		"Cancel":  func(f fixture, ref Ref, _ int64) (Job, error) { return f.s.Cancel(f.ctx, ref, "") },
		"Resolve": func(f fixture, _ Ref, _ int64) (Job, error) { return f.s.Resolve(f.ctx, testQueue, alice, "") },
	}
	// setup brings alice's promise into a state and returns the token a worker would hold
	// (1 for jobs never claimed: any token is then not the lease's).
	setups := map[State]func(f fixture, t *testing.T) (Ref, int64){
		StatePending: func(f fixture, t *testing.T) (Ref, int64) { return f.enqueue(t, request(alice)).Ref(), 1 },
		StateDialing: func(f fixture, t *testing.T) (Ref, int64) {
			j := leased(t, f, 3)
			return j.Ref(), j.Lease.Token
		},
		StateConnected: func(f fixture, t *testing.T) (Ref, int64) {
			j := leased(t, f, 3)
			if _, err := f.s.MarkConnected(f.ctx, j.Ref(), j.Lease.Token, t0); err != nil {
				t.Fatal(err)
			}
			return j.Ref(), j.Lease.Token
		},
		StateKept: func(f fixture, t *testing.T) (Ref, int64) {
			j := leased(t, f, 3)
			if _, err := f.s.MarkConnected(f.ctx, j.Ref(), j.Lease.Token, t0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateKept, ""); err != nil {
				t.Fatal(err)
			}
			return j.Ref(), j.Lease.Token
		},
		StateCancelled: func(f fixture, t *testing.T) (Ref, int64) {
			j := f.enqueue(t, request(alice))
			if _, err := f.s.Cancel(f.ctx, j.Ref(), ""); err != nil {
				t.Fatal(err)
			}
			return j.Ref(), 1
		},
	}
	type want struct {
		state State
		err   error
	}
	tests := []struct {
		op   string
		from map[State]want
	}{
		{"MarkConnected", map[State]want{
			StatePending: {err: ErrStaleToken}, StateDialing: {state: StateConnected}, StateConnected: {err: ErrWrongState},
			StateKept: {err: ErrWrongState}, StateCancelled: {err: ErrStaleToken}}},
		{"Extend", map[State]want{
			StatePending: {err: ErrStaleToken}, StateDialing: {state: StateDialing}, StateConnected: {state: StateConnected},
			StateKept: {err: ErrWrongState}, StateCancelled: {err: ErrStaleToken}}},
		{"Complete unreachable", map[State]want{
			StatePending: {err: ErrStaleToken}, StateDialing: {state: StateUnreachable}, StateConnected: {state: StateUnreachable},
			StateKept: {err: ErrWrongState}, StateCancelled: {err: ErrStaleToken}}},
		{"Complete kept", map[State]want{
			StatePending: {err: ErrStaleToken}, StateDialing: {err: ErrWrongState}, StateConnected: {state: StateKept},
			StateKept: {err: ErrWrongState}, StateCancelled: {err: ErrStaleToken}}},
		{"Retry", map[State]want{
			StatePending: {err: ErrStaleToken}, StateDialing: {state: StatePending}, StateConnected: {state: StatePending},
			StateKept: {err: ErrWrongState}, StateCancelled: {err: ErrStaleToken}}},
		{"Release", map[State]want{
			StatePending: {err: ErrStaleToken}, StateDialing: {state: StatePending}, StateConnected: {state: StatePending},
			StateKept: {err: ErrWrongState}, StateCancelled: {err: ErrStaleToken}}},
		{"Cancel", map[State]want{
			StatePending: {state: StateCancelled}, StateDialing: {state: StateCancelled}, StateConnected: {state: StateCancelled},
			StateKept: {err: ErrWrongState}, StateCancelled: {err: ErrWrongState}}},
		{"Resolve", map[State]want{
			StatePending: {state: StateResolved}, StateDialing: {state: StateResolved}, StateConnected: {state: StateResolved},
			StateKept: {err: ErrNotFound}, StateCancelled: {err: ErrNotFound}}},
	}
	for _, tt := range tests {
		for from, w := range tt.from {
			t.Run(tt.op+"/from "+string(from), func(t *testing.T) {
				f := newFixture(t)
				ref, token := setups[from](f, t)
				before := f.snapshot(t)
				got, err := ops[tt.op](f, ref, token)
				wantErr(t, err, w.err)
				if w.err != nil {
					f.assertUnchanged(t, before)
					return
				}
				if got.State != w.state {
					t.Errorf("state %s, want %s", got.State, w.state)
				}
				if stored := f.get(t, ref); stored.State != w.state {
					t.Errorf("stored state %s, want %s", stored.State, w.state)
				}
			})
		}
	}
}

// Releases (an agent who does not answer) can repeat without end; the history keeps the first
// entry and the latest 99, whether it lives in the job hash or, for a job made before the hash
// held it, in a list of its own.
func TestHistoryStaysBoundedThroughEndlessReleases(t *testing.T) {
	for _, tc := range []struct {
		name      string
		oldList   bool
		wantFirst string
	}{
		{"in the job hash", false, "claimed"},
		{"in a list of its own (a job made before the hash held it)", true, "made"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			j := leased(t, f, 3)
			if tc.oldList {
				k := f.s.ks(testQueue)
				fields := f.rdb.HKeys(f.ctx, k.job(j.ID)).Val()
				for _, fl := range fields {
					if fl == "hn" || strings.HasPrefix(fl, "h:") {
						wantErr(t, f.rdb.HDel(f.ctx, k.job(j.ID), fl).Err(), nil)
					}
				}
				wantErr(t, f.rdb.RPush(f.ctx, k.history(j.ID), `[1700000000000,"made","reason=voicemail"]`).Err(), nil)
			}
			for i := 0; i < 80; i++ {
				got, err := f.s.Release(f.ctx, j.Ref(), j.Lease.Token, time.Time{}, "agent did not answer")
				wantErr(t, err, nil)
				if got.State != StatePending {
					t.Fatalf("release %d: state %s", i, got.State)
				}
				j = f.claim(t, ClaimOptions{})
			}
			got := f.get(t, j.Ref())
			if len(got.History) != 100 || got.History[0].Result != tc.wantFirst || got.History[99].Result != "claimed" {
				t.Errorf("history has %d entries from %q to %q, want the first (%s) and the latest 99", len(got.History),
					got.History[0].Result, got.History[len(got.History)-1].Result, tc.wantFirst)
			}
			if got.Attempts != 0 {
				t.Errorf("releases used %d attempts", got.Attempts)
			}
		})
	}
}
