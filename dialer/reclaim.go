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
	d.nextReclaim = now.Add(d.opts.Rescan)
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
		if t, ok, err := d.store.NextLeaseExpiry(ctx, q.Name); err == nil && ok && t.Before(d.nextReclaim) {
			// A little after the expiry, so the lease holder's last renewal wins a close race.
			d.nextReclaim = t.Add(time.Second)
		}
	}
}
