package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/phone"
)

// Asked remembers, per customer number, which promises callbackd owes that number, so that a
// later call in which the customer reaches the business resolves the promise — whichever
// daemon sees that call, and after a restart. The detector used to keep this in memory; a
// restarted daemon then forgot it, and the customer was called back for nothing.
//
// Keys: <prefix>:{asked:<E164>} (hash: "<queue>/<promise id>" → remembered until, in ms),
// expiring with its latest entry. The hash tag is the number's own: a lookup touches one key,
// numbers spread over a Redis Cluster's slots, and no queue's slot takes the traffic of every
// answered call. Entries are references only: whether the promise is still open, and for
// which targets, is read from the promise itself.
type Asked struct {
	rdb      redis.UniversalClient
	prefix   string
	remember *redis.Script
	err      error
}

// NewAsked returns the memory kept in rdb under prefix (DefaultPrefix when empty). A bad prefix
// or a nil client is reported, with ErrInvalid, by every call.
func NewAsked(rdb redis.UniversalClient, prefix string) *Asked {
	a := &Asked{rdb: rdb}
	a.prefix, a.err = standaloneKeys(rdb, prefix)
	var err error
	if a.remember, err = standaloneScript("asked_remember"); err != nil && a.err == nil {
		a.err = err
	}
	return a
}

func (a *Asked) key(number string) string { return askedKey(a.prefix, number) }

// askedKey is the memory of what number is owed; the store's export and erase of one number
// read and delete it too.
func askedKey(prefix, number string) string { return prefix + ":{asked:" + number + "}" }

func (a *Asked) check(what, number string) (string, error) {
	if a.err != nil {
		return "", fmt.Errorf("%s: %w", what, a.err)
	}
	n, err := phone.ParseE164(number)
	if err != nil {
		return "", fmt.Errorf("%s: %w: %w", what, ErrInvalid, err)
	}
	return n, nil
}

// Remember records that number is owed promise ref until the given time (at least: an
// earlier until never shortens what is remembered).
func (a *Asked) Remember(ctx context.Context, number string, ref Ref, until, now time.Time) error {
	what := fmt.Sprintf("remembering promise %s for %s", ref.ID, phone.Mask(number))
	n, err := a.check(what, number)
	if err != nil {
		return err
	}
	if ref.ID == "" || ValidateQueueName(ref.Queue) != nil {
		return fmt.Errorf("%s: %w: reference %+v", what, ErrInvalid, ref)
	}
	if !until.After(now) {
		return nil // nothing left to remember
	}
	if err := a.remember.Run(ctx, a.rdb, []string{a.key(n)}, ref.Queue+"/"+ref.ID, millis(until), millis(now)).Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Recall returns the promises number is owed that are still remembered at now, oldest first
// (ULIDs sort by creation).
func (a *Asked) Recall(ctx context.Context, number string, now time.Time) ([]Ref, error) {
	what := "recalling the promises owed to " + phone.Mask(number)
	n, err := a.check(what, number)
	if err != nil {
		return nil, err
	}
	all, err := a.rdb.HGetAll(ctx, a.key(n)).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var refs []Ref
	for field, until := range all {
		ms, err := strconv.ParseInt(until, 10, 64)
		q, id, ok := strings.Cut(field, "/")
		if err != nil || !ok || ms <= millis(now) {
			continue // expired, or not ours: Remember will drop it
		}
		refs = append(refs, Ref{Queue: q, ID: id})
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].ID < refs[j].ID })
	return refs, nil
}

// Forget drops ref from number's memory: the promise was resolved or is over.
func (a *Asked) Forget(ctx context.Context, number string, ref Ref) error {
	what := fmt.Sprintf("forgetting promise %s for %s", ref.ID, phone.Mask(number))
	n, err := a.check(what, number)
	if err != nil {
		return err
	}
	if err := a.rdb.HDel(ctx, a.key(n), ref.Queue+"/"+ref.ID).Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Erase drops everything remembered about number (the erase of everything stored about one
// number must reach this key too).
func (a *Asked) Erase(ctx context.Context, number string) error {
	what := "erasing the promises remembered for " + phone.Mask(number)
	n, err := a.check(what, number)
	if err != nil {
		return err
	}
	if err := a.rdb.Del(ctx, a.key(n)).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
