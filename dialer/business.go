package dialer

import (
	"fmt"
	"time"

	"github.com/callbackd/callbackd/queue"
)

// Business time: every duration a queue promises or waits — the deadline per reason, the
// retry backoff, the owner's share of a promise's life — is measured with the same clock, the
// queue's open hours (or wall time with deadline_clock: wall), so the deadline, the dispatcher,
// the forecast and the quote never disagree about what "two hours" means.

// later is t plus d on the queue's clock; zero when the calendar never opens again.
func (q QueuePolicy) later(t time.Time, d time.Duration) time.Time {
	if q.WallClock || q.Hours == nil {
		return t.Add(d)
	}
	return q.Hours.Add(t, d)
}

// DeadlineFrom is the deadline the queue's policy promises for reason to a customer at now.
func (q QueuePolicy) DeadlineFrom(now time.Time, reason queue.Reason) (time.Time, error) {
	d, ok := q.Deadlines[reason]
	if !ok {
		return time.Time{}, fmt.Errorf("dialer: no deadline for reason %q in queue %s", reason, q.Name)
	}
	dl := q.later(now, d)
	if dl.IsZero() {
		return time.Time{}, fmt.Errorf("dialer: queue %s: its calling hours never open again, so no deadline can be promised", q.Name)
	}
	return dl, nil
}

// RetryAt is when a failed attempt at now may be tried again: the backoff on the queue's clock.
func (q QueuePolicy) RetryAt(now time.Time) time.Time {
	if t := q.later(now, q.RetryBackoff); !t.IsZero() {
		return t
	}
	return now.Add(q.RetryBackoff)
}

// HoldUntil is when the owner's preference window of a promise made at created and due at
// deadline ends: OwnerPreference of its open time. Zero on a wall clock, where the store
// computes the same share of wall time itself.
func (q QueuePolicy) HoldUntil(created, deadline time.Time) time.Time {
	if q.WallClock || q.Hours == nil || q.OwnerPreference <= 0 || q.OwnerPreference >= 1 {
		return time.Time{}
	}
	share := time.Duration(q.OwnerPreference * float64(q.Hours.Between(created, deadline)))
	return q.Hours.Add(created, share)
}
