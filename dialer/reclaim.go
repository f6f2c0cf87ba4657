package dialer

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// reclaim brings back promises whose callback died with its daemon, in every queue, and
// schedules the next look for the earliest lease expiry.
func (d *Dispatcher) reclaim(ctx context.Context) {
	now := d.clk.Now()
	lease := d.policy.Calls.Lease
	d.nextReclaim = reclaimLook(now, d.opts.Rescan, lease, time.Time{})
	held := map[string][]string{}
	d.mu.Lock()
	for _, ref := range d.active {
		held[ref.Queue] = append(held[ref.Queue], ref.ID)
	}
	d.mu.Unlock()
	for _, q := range d.policy.Queues {
		// This daemon's own callbacks are alive: a lease of theirs ran out only because Redis
		// was unreachable, and they renew or settle it now that it answers.
		res, err := d.store.ReclaimExcept(ctx, q.Name, held[q.Name])
		if err != nil {
			d.log.Error("reclaiming expired leases failed", zap.String("queue", q.Name), zap.Error(err))
			d.nextReclaim = now.Add(time.Second)
			continue
		}
		if res.Reclaimed > 0 {
			d.log.Warn("took back promises whose callback stopped renewing its lease",
				zap.String("queue", q.Name), zap.Int("reclaimed", res.Reclaimed), zap.Int("unreachable", res.GaveUp))
			d.m.reclaimed(q.Name, res)
		}
		// After Reclaim, so a promise whose callback died is pending again and can expire.
		d.expire(ctx, q.Name)
		if t, ok, err := d.store.NextLeaseExpiry(ctx, q.Name); err == nil && ok {
			if at := reclaimLook(now, d.opts.Rescan, lease, t); at.Before(d.nextReclaim) {
				d.nextReclaim = at
			}
		}
	}
}

// reclaimLook is when to look for expired leases again after a look at now that found the
// earliest lease expiring at expiry (zero: none). A lease another daemon takes after this look
// lasts at least lease, so looking again within half of it finds that lease before it can
// expire: whatever daemon dies, its promises come back within lease plus the slack of their
// last renewal. A known lease is taken back a moment after its expiry, so that a holder whose
// renewal ran late wins a close race: a tenth of the lease, at most a second.
func reclaimLook(now time.Time, rescan, lease time.Duration, expiry time.Time) time.Time {
	at := now.Add(rescan)
	if lease > 0 {
		at = earliest(at, now.Add(lease/2))
	}
	if !expiry.IsZero() {
		slack := min(lease/10, time.Second)
		// An expiry already past is a lease of this daemon's own callbacks (the others were
		// just taken back): they renew it now that Redis answers; no need to look again at once.
		at = earliest(at, laterOf(expiry, now).Add(slack))
	}
	return at
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
