package queue

import (
	"errors"
	"testing"
	"time"
)

// A janitor that finds a dead claim's legs talking records the conversation, whatever the
// lease expiry did meanwhile, as long as nobody claimed the promise since: no attempt used, the
// promise connected and then finished once by its lease expiry.
func TestMarkAdoptedRecordsATalkingClaimWhoseWorkerDied(t *testing.T) {
	var newClaim *Job // a claim made since, which must find its lease gone after the adoption
	tests := []struct {
		name string
		// then runs after the claim (token) was dialled; it returns the token to adopt with.
		then         func(f fixture, c *Job) int64
		want         error
		wantAttempts int
	}{
		{"still leased", func(f fixture, c *Job) int64 { return c.Lease.Token }, nil, 0},
		{"handed back by the lease expiry, attempt charged", func(f fixture, c *Job) int64 {
			f.clk.Advance(2 * time.Minute)
			if res, err := f.s.Reclaim(f.ctx, testQueue); err != nil || res.Reclaimed != 1 {
				t.Fatalf("Reclaim = %+v, %v", res, err)
			}
			return c.Lease.Token
		}, nil, 0},
		// Chaos seed 5: Redis lost the renewals (AOF) and came back; another daemon took the
		// promise back and claimed it at once, while the customer still talked with the first
		// agent. The new claim has only rung an agent: the conversation wins, and the new claim
		// finds its lease gone before it rings the customer.
		{"claimed again since, the customer not rung by the new claim", func(f fixture, c *Job) int64 {
			f.clk.Advance(2 * time.Minute)
			if _, err := f.s.Reclaim(f.ctx, testQueue); err != nil {
				t.Fatal(err)
			}
			newClaim = f.claim(t, ClaimOptions{Worker: "d2/bob", Lease: time.Minute})
			return c.Lease.Token
		}, nil, 0},
		{"claimed again since and the customer rung again", func(f fixture, c *Job) int64 {
			f.clk.Advance(2 * time.Minute)
			if _, err := f.s.Reclaim(f.ctx, testQueue); err != nil {
				t.Fatal(err)
			}
			again := f.claim(t, ClaimOptions{Worker: "d2/bob", Lease: time.Minute})
			if _, err := f.s.MarkDialled(f.ctx, again.Ref(), again.Lease.Token); err != nil {
				t.Fatal(err)
			}
			return c.Lease.Token
		}, ErrStaleToken, 1},
		{"claimed again after another claim was taken back", func(f fixture, c *Job) int64 {
			f.clk.Advance(2 * time.Minute)
			if _, err := f.s.Reclaim(f.ctx, testQueue); err != nil {
				t.Fatal(err)
			}
			second := f.claim(t, ClaimOptions{Worker: "d2/bob", Lease: time.Minute})
			if _, err := f.s.MarkDialled(f.ctx, second.Ref(), second.Lease.Token); err != nil {
				t.Fatal(err)
			}
			f.clk.Advance(2 * time.Minute)
			if _, err := f.s.Reclaim(f.ctx, testQueue); err != nil {
				t.Fatal(err)
			}
			f.claim(t, ClaimOptions{Worker: "d3/bob", Lease: time.Minute})
			return c.Lease.Token
		}, ErrStaleToken, 2},
		{"a token it never had", func(f fixture, c *Job) int64 { return c.Lease.Token + 7 }, ErrStaleToken, 0},
		{"finished meanwhile", func(f fixture, c *Job) int64 {
			if _, err := f.s.Cancel(f.ctx, c.Ref(), "by hand"); err != nil {
				t.Fatal(err)
			}
			return c.Lease.Token
		}, ErrWrongState, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newClaim = nil
			f := newFixture(t)
			j := f.enqueue(t, request(alice))
			c := f.claim(t, ClaimOptions{Worker: "d1/bob", Lease: time.Minute})
			if _, err := f.s.MarkDialled(f.ctx, c.Ref(), c.Lease.Token); err != nil {
				t.Fatal(err)
			}
			token := tt.then(f, c)
			got, err := f.s.MarkAdopted(f.ctx, j.Ref(), token, f.clk.Now(), "d3/janitor", time.Minute)
			wantErr(t, err, tt.want)
			now := f.get(t, j.Ref())
			if now.Attempts != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", now.Attempts, tt.wantAttempts)
			}
			if tt.want != nil {
				return
			}
			if got.State != StateConnected || !got.ConnectedAt.Equal(f.clk.Now()) {
				t.Fatalf("adopted promise %s connected at %v, want connected now", got.State, got.ConnectedAt)
			}
			if newClaim != nil {
				if _, err := f.s.MarkDialled(f.ctx, newClaim.Ref(), newClaim.Lease.Token); !errors.Is(err, ErrStaleToken) {
					t.Errorf("the new claim's MarkDialled after the adoption = %v; want ErrStaleToken", err)
				}
			}
			f.assertIn(t, j.ID, "leases")
			// Its lease expiry finishes it by the connect time: kept, once.
			f.clk.Advance(2 * time.Minute)
			if res, err := f.s.Reclaim(f.ctx, testQueue); err != nil || res.Kept != 1 {
				t.Fatalf("Reclaim after the adoption = %+v, %v; want it kept", res, err)
			}
			if fin := f.get(t, j.Ref()); fin.State != StateKept || fin.Attempts != 0 {
				t.Errorf("finished %s with %d attempts, want kept with none", fin.State, fin.Attempts)
			}
		})
	}
}

func TestMarkAdoptedRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	j := f.enqueue(t, request(alice))
	c := f.claim(t, ClaimOptions{Worker: "d1/bob", Lease: time.Minute})
	before := f.snapshot(t)
	for _, tc := range []struct {
		name   string
		at     time.Time
		worker string
		lease  time.Duration
	}{
		{"no connect time", time.Time{}, "d/j", time.Minute},
		{"no worker", f.clk.Now(), "", time.Minute},
		{"no lease", f.clk.Now(), "d/j", 0},
	} {
		if _, err := f.s.MarkAdopted(f.ctx, j.Ref(), c.Lease.Token, tc.at, tc.worker, tc.lease); err == nil {
			t.Errorf("MarkAdopted with %s succeeded", tc.name)
		}
	}
	f.assertUnchanged(t, before)
}
