package dialer

import (
	"context"
	"errors"
	"fmt"

	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// RefusedError is a callback request refused for good, with the reason it is counted under.
type RefusedError struct {
	Reason queue.Refusal
	Err    error
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%s: %v", e.Reason, e.Err) }

func (e *RefusedError) Unwrap() error { return e.Err }

// refusalOf is the reason a permanent error refused a request.
func refusalOf(err error) queue.Refusal {
	var re *RefusedError
	switch {
	case errors.As(err, &re):
		return re.Reason
	case errors.Is(err, queue.ErrRateLimited):
		return queue.RefusalRateLimited
	case errors.Is(err, phone.ErrInvalid):
		return queue.RefusalInvalidNumber
	}
	return queue.RefusalInvalidRequest
}

func (m *Metrics) refused(reason queue.Refusal) {
	if m != nil {
		m.refusedC.WithLabelValues(string(reason)).Inc()
	}
}

// screen decides whether a callback may be promised to number before anything is stored: it
// must be dialable (dialer.allow) and within the rate limits. A Redis failure while counting
// is returned as it is, so the request waits in the backlog like any other. call names the
// missed call the request comes from ("" for none): every daemon watching it screens it, and
// it counts against the limits once.
func (in *Intake) screen(ctx context.Context, number, call string) error {
	calls := in.opts.Policy.Calls
	if _, err := phone.ParseE164(number); err != nil {
		// Malformed, not merely disallowed: said as the store would say it.
		return fmt.Errorf("%w: number: %w", queue.ErrInvalid, err)
	}
	if calls.Allowed != nil && !calls.Allowed(number) {
		why := "refused"
		if calls.AllowReason != nil {
			why = calls.AllowReason(number)
		}
		return &RefusedError{Reason: queue.RefusalNotAllowed, Err: fmt.Errorf("number not allowed by dialer.allow (%s)", phone.MaskText(why))}
	}
	if in.opts.Limiter == nil {
		return nil
	}
	err := in.opts.Limiter.TakeOnce(ctx, in.opts.Clock.Now(), call, in.opts.Policy.Limits.promiseLimits(number)...)
	if errors.Is(err, queue.ErrRateLimited) {
		return &RefusedError{Reason: queue.RefusalRateLimited, Err: err}
	}
	return err
}
