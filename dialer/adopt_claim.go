package dialer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/queue"
)

// Whose a callback attempt the janitor found on the PBX is, read from Redis: its ids carry the
// promise and the claim's fencing token, the promise's lease the worker holding it.

// PromiseReader reads a promise by its reference (queue.Store).
type PromiseReader interface {
	Get(ctx context.Context, ref queue.Ref) (queue.Job, error)
}

// liveClaim returns the worker of a live claim another daemon holds on the attempt's promise, and
// when its lease runs out; "" when the attempt has no live owner: its promise is gone or
// finished, its claim was taken back or superseded, its lease ran out, or the claim is this
// daemon's from an earlier process with the same instance name (a live callback of this one
// watches its channels and never gets here).
func (j *Janitor) liveClaim(ctx context.Context, id ari.CallbackID) (string, time.Time, error) {
	job, found, err := j.find(ctx, id.Promise)
	if err != nil || !found {
		return "", time.Time{}, err
	}
	l := job.Lease
	leased := job.State == queue.StateDialing || job.State == queue.StateConnected
	if !leased || l.Token != id.Token || !j.opts.Clock.Now().Before(l.Expires) || strings.HasPrefix(l.Worker, j.opts.Instance+"/") {
		return "", time.Time{}, nil
	}
	return l.Worker, l.Expires, nil
}

// find looks for a promise in every queue: the callback id carries none.
func (j *Janitor) find(ctx context.Context, promise string) (queue.Job, bool, error) {
	id := strings.ToUpper(promise) // promise ids are ULIDs; the channel id lower-cases them
	for _, q := range j.opts.Queues {
		job, err := j.opts.Promises.Get(ctx, queue.Ref{Queue: q, ID: id})
		switch {
		case err == nil:
			return job, true, nil
		case !errors.Is(err, queue.ErrNotFound):
			return queue.Job{}, false, fmt.Errorf("finding promise %s: %w", id, err)
		}
	}
	return queue.Job{}, false, nil
}
