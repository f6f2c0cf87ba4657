package dialer

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// RateLimits is dialer.rate_limits as plain values; a zero limit is off. They hold whatever a
// spoofed caller id does: a number is promised and dialled a few times a day at most, a block
// of numbers a few times an hour, and the whole daemon group dials at most so many an hour.
type RateLimits struct {
	PromisesPerNumberPerDay int
	DialsPerNumberPerDay    int
	// BlockDigits is how many leading digits of the E.164 number (without '+') make a block.
	BlockDigits             int
	PromisesPerBlockPerHour int
	DialsPerHour            int
}

// Limiter counts events against limits shared by every daemon (queue.RateLimits). TakeOnce
// counts an event every daemon may see (one missed call) once, whoever counts it first.
type Limiter interface {
	Take(ctx context.Context, now time.Time, limits ...queue.Limit) error
	TakeOnce(ctx context.Context, now time.Time, event string, limits ...queue.Limit) error
}

const day = 24 * time.Hour

// promiseLimits are the limits a new callback request for number counts against.
func (r RateLimits) promiseLimits(number string) []queue.Limit {
	return []queue.Limit{
		{Name: "promises_per_number_per_day", Subject: number, Max: r.PromisesPerNumberPerDay, Window: day},
		{Name: "promises_per_block_per_hour", Subject: r.block(number), Max: r.PromisesPerBlockPerHour, Window: time.Hour},
	}
}

// dialLimits are the limits one call to number counts against.
func (r RateLimits) dialLimits(number string) []queue.Limit {
	return []queue.Limit{
		{Name: "dials_per_number_per_day", Subject: number, Max: r.DialsPerNumberPerDay, Window: day},
		{Name: "dials_per_hour", Subject: "all", Max: r.DialsPerHour, Window: time.Hour},
	}
}

func (r RateLimits) block(number string) string {
	digits := strings.TrimPrefix(number, "+")
	if r.BlockDigits > 0 && r.BlockDigits < len(digits) {
		digits = digits[:r.BlockDigits]
	}
	return digits
}

// withinLimits counts this callback against the dial limits before anyone is rung. Over a
// limit it sets a release verdict that holds the promise until the limit's window ends (no
// attempt used: nobody was rung) and reports false. A limiter that cannot be reached does not
// stop the call: the allow-list still holds, and Redis being down already stops new claims.
func (cb *callback) withinLimits(ctx context.Context, v *verdict) bool {
	if cb.env.limiter == nil {
		return true
	}
	err := cb.env.limiter.Take(ctx, cb.env.clk.Now(), cb.env.limits.dialLimits(cb.job.Number)...)
	var rl *queue.RateLimitedError
	switch {
	case errors.As(err, &rl):
		cb.log.Warn("callback held back: rate limit reached", zap.String("refusal", string(queue.RefusalRateLimited)),
			zap.String("limit", rl.Limit.Name), zap.Time("until", rl.Until))
		cb.env.metrics.refused(queue.RefusalRateLimited)
		*v = verdict{kind: release, until: rl.Until, detail: string(queue.RefusalRateLimited) + ": " + rl.Limit.Name}
		return false
	case err != nil:
		cb.log.Warn("counting the callback against the rate limits failed; calling anyway", zap.Error(err))
	}
	return true
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
