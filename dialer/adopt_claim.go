package dialer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/queue"
)

// Whose a callback attempt the janitor found on the PBX is, read from Redis: its ids carry the
// promise and the claim's fencing token, the promise's lease the worker holding it.

// JanitorPromises is what the janitor reads and writes of promises (queue.Store): it reads whose
// an attempt is, records the connect of a conversation whose callback died before it could,
// and stores what it heard of another daemon's customer answering.
type JanitorPromises interface {
	Get(ctx context.Context, ref queue.Ref) (queue.Job, error)
	MarkAdopted(ctx context.Context, ref queue.Ref, token int64, at time.Time, worker string, lease time.Duration) (queue.Job, error)
	MarkHeard(ctx context.Context, ref queue.Ref, token int64, at time.Time) (queue.Job, error)
}

// liveClaim returns the worker of a live claim another daemon holds on the attempt's promise, and
// when its lease runs out; "" when the attempt has no live owner: its promise is gone or
// finished, its claim was taken back or superseded, its lease ran out, or the claim is this
// daemon's from an earlier process with the same instance name (a live callback of this one
// watches its channels and never gets here). It also returns the promise (found false: gone).
func (j *Janitor) liveClaim(ctx context.Context, id ari.CallbackID) (string, time.Time, queue.Job, bool, error) {
	job, found, err := j.find(ctx, id.Promise)
	if err != nil || !found {
		return "", time.Time{}, job, found, err
	}
	l := job.Lease
	leased := job.State == queue.StateDialing || job.State == queue.StateConnected
	if !leased || l.Token != id.Token || !j.opts.Clock.Now().Before(l.Expires) || strings.HasPrefix(l.Worker, j.opts.Instance+"/") {
		return "", time.Time{}, job, true, nil
	}
	return l.Worker, l.Expires, job, true, nil
}

// recordTalk writes the connect of an adopted conversation whose callback died between the
// customer's answer and its own connect write (or held that write through a Redis outage and
// died with it). Without it the lease expiry would read the claim as an unanswered dial, use an
// attempt and ring the customer again after they talked to an agent. If the lease ran out and
// Reclaim already handed the promise back, the store undoes that as long as nobody claimed it
// since (queue.Store.MarkAdopted). The connect time is now, the earliest the janitor knows of
// it, so a promise is never counted kept on a guess.
func (j *Janitor) recordTalk(ctx context.Context, job queue.Job, id ari.CallbackID) error {
	if job.State != queue.StateDialing && job.State != queue.StatePending {
		return nil
	}
	_, err := j.opts.Promises.MarkAdopted(ctx, job.Ref(), id.Token, j.opts.Clock.Now(), j.opts.Instance+"/janitor", j.opts.Lease)
	if errors.Is(err, queue.ErrStaleToken) || errors.Is(err, queue.ErrWrongState) || errors.Is(err, queue.ErrNotFound) {
		return nil // claimed again, connected or finished meanwhile: nothing of this claim to record
	}
	if err != nil {
		return fmt.Errorf("recording the connect of adopted promise %s: %w", job.ID, err)
	}
	j.log.Info("recorded the connect of a conversation whose callback's daemon was gone", zap.String("promise", job.ID))
	return nil
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
