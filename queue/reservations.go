package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
)

// Reservations keeps which daemon holds which agent, in Redis, so that two daemons sharing one
// Redis never ring the same agent at once. A reservation is a key holding the holder's name
// with a lease: a daemon that crashes loses its agents when the lease runs out, and one that
// lives renews it. The lease runs on Redis' own clock, not a Store's clock: it has to expire
// for real when its holder is gone, whatever time the holder believed it was.
//
// Keys: <prefix>:agent:<id>:reservation (string: the holder). They belong to no queue, so they
// carry no hash tag; each operation touches one key and runs on Redis Cluster as well.
type Reservations struct {
	rdb            redis.UniversalClient
	prefix         string
	renew, release *redis.Script
	// err is a construction problem, reported by every call: NewReservations returns no error.
	err error
}

// NewReservations returns reservations kept in rdb under prefix (DefaultPrefix when empty). A
// bad prefix or a nil client is reported, with ErrInvalid, by every call.
func NewReservations(rdb redis.UniversalClient, prefix string) *Reservations {
	r := &Reservations{rdb: rdb}
	r.prefix, r.err = standaloneKeys(rdb, prefix)
	var err error
	if r.renew, err = standaloneScript("reservation_renew"); err == nil {
		r.release, err = standaloneScript("reservation_release")
	}
	if err != nil && r.err == nil {
		r.err = err
	}
	return r
}

func (r *Reservations) key(agent string) string { return r.prefix + ":agent:" + agent + ":reservation" }

// Reserve takes agent for holder for lease, if nobody holds it. False when it is reserved
// already, by anyone (holder included: Renew keeps a reservation one has).
func (r *Reservations) Reserve(ctx context.Context, agent, holder string, lease time.Duration) (bool, error) {
	what := fmt.Sprintf("reserving agent %q for %q", agent, holder)
	if err := r.check(agent, holder, &lease); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	ok, err := r.rdb.SetNX(ctx, r.key(agent), holder, lease).Result()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return ok, nil
}

// Renew moves the end of holder's reservation of agent to now + lease. False when holder does
// not hold agent (never did, released it, or the lease ran out and perhaps someone else took
// it): the agent must then be treated as lost.
func (r *Reservations) Renew(ctx context.Context, agent, holder string, lease time.Duration) (bool, error) {
	what := fmt.Sprintf("renewing reservation of agent %q for %q", agent, holder)
	if err := r.check(agent, holder, &lease); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	n, err := r.renew.Run(ctx, r.rdb, []string{r.key(agent)}, holder, lease.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n == 1, nil
}

// Release ends holder's reservation of agent. False when holder did not hold it; a reservation
// someone else holds is left alone.
func (r *Reservations) Release(ctx context.Context, agent, holder string) (bool, error) {
	what := fmt.Sprintf("releasing reservation of agent %q for %q", agent, holder)
	if err := r.check(agent, holder, nil); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	n, err := r.release.Run(ctx, r.rdb, []string{r.key(agent)}, holder).Int64()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n == 1, nil
}

// Holder says who holds agent; false when nobody does.
func (r *Reservations) Holder(ctx context.Context, agent string) (string, bool, error) {
	what := fmt.Sprintf("reading reservation of agent %q", agent)
	if r.err != nil {
		return "", false, fmt.Errorf("%s: %w", what, r.err)
	}
	if err := checkName("agent", agent); err != nil {
		return "", false, fmt.Errorf("%s: %w", what, err)
	}
	h, err := r.rdb.Get(ctx, r.key(agent)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", what, err)
	}
	return h, true, nil
}

// check validates the arguments shared by the changing calls; lease is nil for Release.
func (r *Reservations) check(agent, holder string, lease *time.Duration) error {
	if r.err != nil {
		return r.err
	}
	if err := checkName("agent", agent); err != nil {
		return err
	}
	if err := checkName("holder", holder); err != nil {
		return err
	}
	if lease != nil {
		return checkLease(*lease)
	}
	return nil
}

// checkName refuses an empty name or one with white space: agent ids and holder names appear
// in keys and log lines, where a space would make them ambiguous.
func checkName(field, v string) error {
	if v == "" {
		return fmt.Errorf("%w: no %s", ErrInvalid, field)
	}
	if err := CheckText(field, v); err != nil {
		return err
	}
	for _, c := range v {
		if unicode.IsSpace(c) {
			return fmt.Errorf("%w: %s %q contains white space", ErrInvalid, field, v)
		}
	}
	return nil
}

// standaloneKeys checks what every keeper of keys outside any queue needs (Reservations,
// RateLimits): a client and a prefix, DefaultPrefix when empty. Problems wrap ErrInvalid.
func standaloneKeys(rdb redis.UniversalClient, prefix string) (string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	switch {
	case rdb == nil:
		return prefix, fmt.Errorf("%w: no Redis client", ErrInvalid)
	case !prefixRE.MatchString(prefix):
		return prefix, fmt.Errorf("%w: key prefix %q must be 1-64 of A-Z a-z 0-9 _ . : -", ErrInvalid, prefix)
	}
	return prefix, nil
}
