package dialer

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// keepLease renews the promise's lease while the callback runs. A promise taken away
// (resolved, cancelled, reclaimed) cancels the callback with errTakenAway.
func (cb *callback) keepLease(ctx context.Context, cancel context.CancelCauseFunc) {
	lease := cb.env.calls.Lease
	for {
		select {
		case <-ctx.Done():
			return
		case <-cb.env.clk.After(lease / 3):
		}
		if _, err := cb.env.store.Extend(ctx, cb.job.Ref(), cb.job.Lease.Token, lease); err != nil {
			if takenAway(err) && cb.talking.Load() {
				// Redis was unreachable for longer than the lease and the promise was taken
				// back: Reclaim finished it kept or late, since the customer was reached.
				// Hanging up now would cut a conversation; it goes on, and settling it
				// finds the promise already settled.
				cb.log.Warn("the promise's lease was taken back while the customer talks; the conversation goes on", zap.Error(err))
				return
			}
			if takenAway(err) {
				cb.log.Warn("promise taken away during its callback; hanging up", zap.Error(err))
				cancel(errTakenAway)
				return
			}
			if ctx.Err() == nil {
				cb.log.Error("renewing the promise lease failed", zap.Error(err))
			}
		}
	}
}

// takenAway says the store refused a fenced change because the promise is no longer this
// callback's: its lease was reclaimed, or it was resolved, cancelled or deleted under it.
func takenAway(err error) bool {
	return errors.Is(err, queue.ErrStaleToken) || errors.Is(err, queue.ErrWrongState) || errors.Is(err, queue.ErrNotFound)
}
