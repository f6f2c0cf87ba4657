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
	token := cb.job.Lease.Token
	for {
		select {
		case <-ctx.Done():
			return
		case <-cb.env.clk.After(lease / 3):
		}
		if _, err := cb.env.store.Extend(ctx, cb.job.Ref(), token, lease); err != nil {
			if takenAway(err) && cb.talking.Load() {
				// Redis was unreachable for longer than the lease and the promise was taken
				// back. With the connect written, Reclaim finished it kept or late; without it
				// (the write was held through the outage) it is pending again and would be
				// dialled again while the customer talks: take it back as a conversation.
				// Hanging up would cut one either way; it goes on.
				if t, ok := cb.adoptOwn(ctx); ok {
					token = t
					continue
				}
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

// adoptOwn takes this callback's promise back as the conversation it is, when its lease was
// reclaimed before the connect reached Redis (queue.Store.MarkAdopted: the attempt Reclaim
// charged is given back, the promise is connected under a new token). It fails, harmlessly,
// when the promise was connected (Reclaim then finished it), claimed again or finished.
func (cb *callback) adoptOwn(ctx context.Context) (int64, bool) {
	if t := cb.adopted.Load(); t != 0 {
		return t, true
	}
	j, err := cb.env.store.MarkAdopted(ctx, cb.job.Ref(), cb.job.Lease.Token, cb.connectedAt, cb.job.Lease.Worker, cb.env.calls.Lease)
	if err != nil {
		return 0, false
	}
	cb.adopted.Store(j.Lease.Token)
	cb.log.Warn("the promise's lease was lost to an outage before its connect was written; taken back as the conversation it is")
	return j.Lease.Token, true
}

// takenAway says the store refused a fenced change because the promise is no longer this
// callback's: its lease was reclaimed, or it was resolved, cancelled or deleted under it.
func takenAway(err error) bool {
	return errors.Is(err, queue.ErrStaleToken) || errors.Is(err, queue.ErrWrongState) || errors.Is(err, queue.ErrNotFound)
}
