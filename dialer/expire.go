package dialer

import (
	"context"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// expire ends the queue's promises that stayed open longer than its max_open_age: nobody is
// rung about a call of weeks ago, and they count against the kept ratio as broken promises.
// Part of the periodic pass (reclaim), so every daemon does it and the store makes sure each
// promise ends once.
func (d *Dispatcher) expire(ctx context.Context, queueName string) {
	res, err := d.store.Expire(ctx, queueName)
	if err != nil {
		d.log.Error("expiring old open promises failed", zap.String("queue", queueName), zap.Error(err))
		return
	}
	if len(res.Expired) > 0 {
		d.log.Warn("promises expired: open longer than the queue's max_open_age",
			zap.String("queue", queueName), zap.Int("expired", len(res.Expired)), zap.Strings("promises", res.Expired))
		d.m.expired(queueName, len(res.Expired))
	}
}

func (m *Metrics) expired(queueName string, n int) {
	if m != nil && n > 0 {
		m.completedC.WithLabelValues(queueName, string(queue.StateExpired)).Add(float64(n))
	}
}
