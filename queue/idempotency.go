package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrIdempotencyConflict is a key used again for a different request, or while its first
// request is still being served.
var ErrIdempotencyConflict = errors.New("idempotency key already used")

// Idempotency remembers which promise an idempotency key made, so a client retrying a request
// (a timeout, a crash between sending and reading the answer) gets the same promise instead of
// a second one — from any daemon sharing the Redis.
//
// Keys: <prefix>:idempotency:<sha256 of scope and key> (hash: fingerprint, queue, id), with a
// TTL. The client's key is hashed so any printable key makes a well-formed Redis key; like
// presence the keys belong to no queue.
type Idempotency struct {
	rdb    redis.UniversalClient
	prefix string
	claim  *redis.Script
	err    error
}

// NewIdempotency returns the keys kept in rdb under prefix (DefaultPrefix when empty).
func NewIdempotency(rdb redis.UniversalClient, prefix string) *Idempotency {
	i := &Idempotency{rdb: rdb}
	i.prefix, i.err = standaloneKeys(rdb, prefix)
	var err error
	if i.claim, err = standaloneScript("idempotency_claim"); err != nil && i.err == nil {
		i.err = err
	}
	return i
}

func (i *Idempotency) key(scope, key string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	return i.prefix + ":idempotency:" + hex.EncodeToString(sum[:])
}

// Claim takes key (in scope, e.g. the client's token name) for a request with fingerprint, for
// ttl. A new key answers (zero Ref, true): the caller makes the promise and calls Done, or
// Forget if it made none. A key already done with the same fingerprint answers its promise and
// false. A different fingerprint, or a key still being served, is ErrIdempotencyConflict.
func (i *Idempotency) Claim(ctx context.Context, scope, key, fingerprint string, ttl time.Duration) (Ref, bool, error) {
	what := "claiming an idempotency key"
	if i.err != nil {
		return Ref{}, false, fmt.Errorf("%s: %w", what, i.err)
	}
	k := i.key(scope, key)
	res, err := i.claim.Run(ctx, i.rdb, []string{k}, fingerprint, ttl.Milliseconds()).StringSlice()
	if err != nil {
		return Ref{}, false, fmt.Errorf("%s: %w", what, err)
	}
	if res[0] == "new" {
		return Ref{}, true, nil
	}
	if len(res) < 4 {
		return Ref{}, false, fmt.Errorf("%s: unexpected script reply %v", what, res)
	}
	switch {
	case res[1] != fingerprint:
		return Ref{}, false, fmt.Errorf("%w: with a different request", ErrIdempotencyConflict)
	case res[3] == "":
		return Ref{}, false, fmt.Errorf("%w: its first request is still being served", ErrIdempotencyConflict)
	case res[2] == "":
		// Done writes both at once: a record with one is broken, not a promise in no queue.
		return Ref{}, false, fmt.Errorf("%s: record %s names promise %s but no queue", what, k, res[3])
	}
	return Ref{Queue: res[2], ID: res[3]}, false, nil
}

// Done records that key made ref; the TTL Claim set stays.
func (i *Idempotency) Done(ctx context.Context, scope, key string, ref Ref) error {
	if i.err != nil {
		return i.err
	}
	if err := i.rdb.HSet(ctx, i.key(scope, key), "queue", ref.Queue, "id", ref.ID).Err(); err != nil {
		return fmt.Errorf("recording the promise of an idempotency key: %w", err)
	}
	return nil
}

// Forget gives key up after its request made no promise, so a retry is served afresh.
func (i *Idempotency) Forget(ctx context.Context, scope, key string) error {
	if i.err != nil {
		return i.err
	}
	if err := i.rdb.Del(ctx, i.key(scope, key)).Err(); err != nil {
		return fmt.Errorf("forgetting an idempotency key: %w", err)
	}
	return nil
}
