package dialer

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/callbackd/callbackd/queue"
)

// partitioned is a daemon's promise store cut off from Redis while cut is set: every call
// fails as a refused connection would (retryable, not a refusal by the store), while another
// daemon's store still reaches the same Redis.
type partitioned struct {
	Promises
	cut *atomic.Bool
}

var errPartitioned = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused (partitioned)")

func (p partitioned) down() error {
	if p.cut.Load() {
		return errPartitioned
	}
	return nil
}

func (p partitioned) Extend(ctx context.Context, ref queue.Ref, token int64, d time.Duration) (queue.Job, error) {
	if err := p.down(); err != nil {
		return queue.Job{}, err
	}
	return p.Promises.Extend(ctx, ref, token, d)
}

func (p partitioned) MarkDialled(ctx context.Context, ref queue.Ref, token int64) (queue.Job, error) {
	if err := p.down(); err != nil {
		return queue.Job{}, err
	}
	return p.Promises.MarkDialled(ctx, ref, token)
}

func (p partitioned) MarkConnected(ctx context.Context, ref queue.Ref, token int64, at time.Time) (queue.Job, error) {
	if err := p.down(); err != nil {
		return queue.Job{}, err
	}
	return p.Promises.MarkConnected(ctx, ref, token, at)
}

func (p partitioned) MarkAdopted(ctx context.Context, ref queue.Ref, token int64, at time.Time, worker string, lease time.Duration) (queue.Job, error) {
	if err := p.down(); err != nil {
		return queue.Job{}, err
	}
	return p.Promises.MarkAdopted(ctx, ref, token, at, worker, lease)
}

func (p partitioned) Complete(ctx context.Context, ref queue.Ref, token int64, outcome queue.State, detail string) (queue.Job, error) {
	if err := p.down(); err != nil {
		return queue.Job{}, err
	}
	return p.Promises.Complete(ctx, ref, token, outcome, detail)
}

func (p partitioned) Retry(ctx context.Context, ref queue.Ref, token int64, notBefore time.Time, detail string) (queue.Job, error) {
	if err := p.down(); err != nil {
		return queue.Job{}, err
	}
	return p.Promises.Retry(ctx, ref, token, notBefore, detail)
}

func (p partitioned) Release(ctx context.Context, ref queue.Ref, token int64, notBefore time.Time, detail string) (queue.Job, error) {
	if err := p.down(); err != nil {
		return queue.Job{}, err
	}
	return p.Promises.Release(ctx, ref, token, notBefore, detail)
}

func (p partitioned) Get(ctx context.Context, ref queue.Ref) (queue.Job, error) {
	if err := p.down(); err != nil {
		return queue.Job{}, err
	}
	return p.Promises.Get(ctx, ref)
}

func (p partitioned) Claim(ctx context.Context, queueName string, o queue.ClaimOptions) (*queue.Job, error) {
	if err := p.down(); err != nil {
		return nil, err
	}
	return p.Promises.Claim(ctx, queueName, o)
}

func (p partitioned) ReclaimExcept(ctx context.Context, queueName string, held []string) (queue.ReclaimResult, error) {
	if err := p.down(); err != nil {
		return queue.ReclaimResult{}, err
	}
	return p.Promises.ReclaimExcept(ctx, queueName, held)
}
