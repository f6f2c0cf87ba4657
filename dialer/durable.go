package dialer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// Retrying a store write that a conversation depends on: the first wait after Redis failed,
// doubling up to the longest (the intake's schedule).
const (
	storeRetryFirst = 500 * time.Millisecond
	storeRetryMax   = 30 * time.Second
)

// connectWrite is the connect being written to the store while the conversation goes on.
type connectWrite struct {
	done chan struct{}
	err  error // nil: written; else the store refused it (takenAway) or the daemon stopped
}

// recordConnect writes "customer answered" to the store. A promise resolved or cancelled
// under the callback is refused at once (err set, done closed). When Redis is unreachable the
// verdict is held in memory and written in the background, retried with backoff, while the
// conversation goes on: a customer who talked to an agent must never be re-queued as an
// unanswered attempt.
func (cb *callback) recordConnect(ctx context.Context) (*connectWrite, error) {
	w := &connectWrite{done: make(chan struct{})}
	write := func(ctx context.Context) error {
		_, err := cb.env.store.MarkConnected(ctx, cb.job.Ref(), cb.job.Lease.Token, cb.connectedAt)
		return err
	}
	err := write(context.WithoutCancel(ctx))
	if err == nil || takenAway(err) {
		w.err = err
		close(w.done)
		return w, err
	}
	cb.log.Error("recording the connect failed; holding it and retrying until Redis answers", zap.Error(err))
	go func() {
		defer close(w.done)
		w.err = cb.untilStored("recording the connect", write)
	}()
	return w, nil
}

// untilStored runs write until it succeeds, the store refuses it for good (the promise is no
// longer this callback's), or the daemon's grace period ends; failures in between (Redis down,
// a timeout) are retried with backoff. It returns the last error, nil once written.
func (cb *callback) untilStored(what string, write func(context.Context) error) error {
	wait := storeRetryFirst
	for n := 0; ; n++ {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(cb.calls), 10*time.Second)
		err := write(ctx)
		cancel()
		if err == nil || takenAway(err) {
			if err == nil && n > 0 {
				cb.log.Info(what+" succeeded after Redis came back", zap.Int("tries", n+1))
			}
			return err
		}
		if n == 0 {
			cb.log.Error(what+" failed; holding it and retrying until Redis answers", zap.Error(err))
		}
		select {
		case <-cb.calls.Done():
			cb.log.Error(what+" failed and the daemon is stopping; the lease expiry settles the promise", zap.Error(err))
			return err
		case <-cb.env.clk.After(wait):
		}
		wait = min(2*wait, storeRetryMax)
	}
}

// settledElsewhere reads how a promise ended that was taken from this callback after its
// customer talked to the agent: Reclaim finishes such a promise kept or late by the recorded
// connect time (and counts it). ok is false when it did not end so.
func (cb *callback) settledElsewhere() (queue.Job, bool) {
	var job queue.Job
	err := cb.untilStored("reading the promise taken back during the conversation", func(ctx context.Context) error {
		var err error
		job, err = cb.env.store.Get(ctx, cb.job.Ref())
		return err
	})
	return job, err == nil && (job.State == queue.StateKept || job.State == queue.StateLate)
}

// settleConnected finishes a promise whose customer talked to the agent, kept or late by the
// connect time: once the connect is in the store (held and retried while Redis was down), the
// outcome is written, retried the same way. A promise Reclaim took back meanwhile was
// finished kept or late there, and counted there: it is reported, not counted twice.
func (cb *callback) settleConnected(v verdict) (after queue.Job, counted bool, err error) {
	if cb.connect != nil {
		<-cb.connect.done
		if err := cb.connect.err; err != nil && !takenAway(err) {
			return queue.Job{}, false, fmt.Errorf("the connect was never recorded: %w", err)
		}
	}
	store, job, ref, tok := cb.env.store, cb.job, cb.job.Ref(), cb.job.Lease.Token
	if t := cb.adopted.Load(); t != 0 {
		tok = t
	}
	outcome := queue.StateKept
	if cb.connectedAt.After(job.Deadline) {
		outcome = queue.StateLate
	}
	// complete writes the outcome under token. A request merged in during the call may have
	// moved the deadline: the store judges by the deadline it holds now.
	complete := func(token int64) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			var err error
			after, err = store.Complete(ctx, ref, token, outcome, v.detail)
			if errors.Is(err, queue.ErrOutcome) {
				outcome = map[queue.State]queue.State{queue.StateKept: queue.StateLate, queue.StateLate: queue.StateKept}[outcome]
				after, err = store.Complete(ctx, ref, token, outcome, v.detail)
			}
			return err
		}
	}
	err = cb.untilStored("settling the conversation", complete(tok))
	if takenAway(err) {
		if done, ok := cb.settledElsewhere(); ok {
			cb.log.Info("the conversation's promise was already settled when its lease was taken back", zap.String("state", string(done.State)))
			return done, false, nil
		}
		// Taken back before the connect was written, and not claimed since: settle it as
		// the conversation it was, not as the unanswered dial Reclaim took it for.
		if t, ok := cb.adoptOwn(context.WithoutCancel(cb.calls)); ok {
			err = cb.untilStored("settling the conversation taken back", complete(t))
		}
	}
	return after, err == nil, err
}
