package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/phone"
)

// ErrRateLimited is wrapped by a RateLimitedError: a limit of RateLimits was reached.
var ErrRateLimited = errors.New("rate limit reached")

// Limit is one fixed-window counter: at most Max events per Window for Subject (a number, a
// number block, "all"). Name says which limit it is in errors and logs (the config key).
type Limit struct {
	Name    string
	Subject string
	Max     int
	Window  time.Duration
}

// RateLimitedError says which limit refused an event and when its window ends.
type RateLimitedError struct {
	Limit Limit
	Until time.Time
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("%v: %s (%d per %s) for %s until %s", ErrRateLimited, e.Limit.Name, e.Limit.Max, e.Limit.Window,
		phone.MaskText(e.Limit.Subject), e.Until.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitedError) Unwrap() error { return ErrRateLimited }

// RateLimits keeps fixed-window counters in Redis, shared by every daemon on it, so a spoofed
// burst is limited however many daemons see it. Windows are aligned to the epoch and counted
// with the caller's clock (now is passed in); a counter expires when its window ends.
//
// Keys: <prefix>:{ratelimit}:<limit>:<subject>:<window index> (string: the count) and
// <prefix>:{ratelimit}:once:<event> (string: the verdict an event got, see TakeOnce), all under
// one hash tag so a check of several limits is one script on Redis Cluster.
type RateLimits struct {
	rdb    redis.UniversalClient
	prefix string
	take   *redis.Script
	err    error
}

// NewRateLimits returns rate limits kept in rdb under prefix (DefaultPrefix when empty). A
// bad prefix or a nil client is reported, with ErrInvalid, by every call.
func NewRateLimits(rdb redis.UniversalClient, prefix string) *RateLimits {
	r := &RateLimits{rdb: rdb}
	r.prefix, r.err = standaloneKeys(rdb, prefix)
	var err error
	if r.take, err = standaloneScript("ratelimit"); err != nil && r.err == nil {
		r.err = err
	}
	return r
}

// Take counts one event at now against every limit with Max > 0, all or none: nil when each
// was below its maximum, a *RateLimitedError naming the first limit reached otherwise (and
// then nothing is counted).
func (r *RateLimits) Take(ctx context.Context, now time.Time, limits ...Limit) error {
	return r.TakeOnce(ctx, now, "", limits...)
}

// TakeOnce is Take for an event that several daemons may count — one missed call watched by
// each: the first to count event decides, and whoever counts it again within the longest
// window gets that verdict and counts nothing. event ("" for none) must not name a number:
// it is kept as <prefix>:{ratelimit}:once:<event>.
func (r *RateLimits) TakeOnce(ctx context.Context, now time.Time, event string, limits ...Limit) error {
	if r.err != nil {
		return fmt.Errorf("checking rate limits: %w", r.err)
	}
	var keys []string
	var used []Limit
	args := []any{0}
	var longest time.Duration
	for _, l := range limits {
		if l.Max <= 0 {
			continue
		}
		if l.Window < time.Millisecond || l.Name == "" || l.Subject == "" {
			return fmt.Errorf("checking rate limits: %w: limit %q needs a name, a subject and a window of at least 1ms", ErrInvalid, l.Name)
		}
		keys = append(keys, r.key(l, now))
		args = append(args, l.Max, l.Window.Milliseconds())
		used = append(used, l)
		longest = max(longest, l.Window)
	}
	if len(keys) == 0 {
		return nil
	}
	if event != "" {
		keys = append(keys, r.prefix+":{ratelimit}:once:"+event)
		args[0] = longest.Milliseconds()
	}
	i, err := r.take.Run(ctx, r.rdb, keys, args...).Int()
	if err != nil {
		return fmt.Errorf("checking rate limits %s: %w", used[0].Name, err)
	}
	if i == 0 {
		return nil
	}
	if i > len(used) {
		return fmt.Errorf("checking rate limits: unexpected script reply %d", i)
	}
	l := used[i-1]
	return &RateLimitedError{Limit: l, Until: windowStart(l, now).Add(l.Window)}
}

func (r *RateLimits) key(l Limit, now time.Time) string {
	return r.prefix + ":{ratelimit}:" + l.Name + ":" + l.Subject + ":" + strconv.FormatInt(now.UnixMilli()/l.Window.Milliseconds(), 10)
}

func windowStart(l Limit, now time.Time) time.Time {
	w := l.Window.Milliseconds()
	return time.UnixMilli(now.UnixMilli() / w * w)
}
