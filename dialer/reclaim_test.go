package dialer

import (
	"testing"
	"time"
)

// When the dispatcher looks for expired leases next: soon enough that a lease taken by a
// daemon that then dies comes back within the lease plus a moment, whenever it was taken.
func TestTheNextLookForExpiredLeases(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	const rescan, lease = 2 * time.Minute, 3 * time.Second
	cases := []struct {
		name   string
		lease  time.Duration
		expiry time.Time
		want   time.Time
	}{
		{"no lease anywhere: within half a lease, so one taken after this look is seen before it can expire",
			lease, time.Time{}, now.Add(1500 * time.Millisecond)},
		{"a lease expiring soon: a tenth of the lease after its expiry, for its holder's late renewal",
			lease, now.Add(time.Second), now.Add(1300 * time.Millisecond)},
		{"a lease expiring later than half a lease: the half-lease look comes first",
			lease, now.Add(2900 * time.Millisecond), now.Add(1500 * time.Millisecond)},
		{"a long lease: at most a second after the expiry",
			time.Minute, now.Add(10 * time.Second), now.Add(11 * time.Second)},
		{"a long lease and none held: half a lease",
			time.Minute, time.Time{}, now.Add(30 * time.Second)},
		{"an expiry already past (this daemon's own, not taken back): not again at once",
			lease, now.Add(-5 * time.Second), now.Add(300 * time.Millisecond)},
		{"a lease longer than four rescans: the rescan bounds the wait",
			10 * time.Minute, time.Time{}, now.Add(rescan)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := reclaimLook(now, rescan, c.lease, c.expiry); !got.Equal(c.want) {
				t.Errorf("next look at now%+v; want now%+v", got.Sub(now), c.want.Sub(now))
			}
		})
	}
}
