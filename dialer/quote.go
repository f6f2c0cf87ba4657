package dialer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// ErrNoQuote is returned when the forecast keeps no deadline within its horizon: nobody on the
// rota serves the queue, or its calling hours never open.
var ErrNoQuote = errors.New("no deadline can be kept")

// quoteID sorts after every stored id, so a quoted promise takes its place behind promises
// already made with the same deadline, as the store would put it.
const quoteID = "\uffffquote"

// quoteRounds bounds the search; each round moves the candidate past at least one promise.
const quoteRounds = 64

// Quote is the earliest deadline the forecast keeps for a new promise of reason in queueName
// made at now, with the promises already made; never earlier than the queue's policy allows.
func (f *Forecaster) Quote(ctx context.Context, queueName string, reason queue.Reason, now time.Time) (time.Time, error) {
	return f.QuoteWithout(ctx, queueName, reason, now, "")
}

// QuoteWithout is Quote as if the pending promise id were not there: the honest deadline for
// moving that promise (a reschedule), which must not queue behind itself.
func (f *Forecaster) QuoteWithout(ctx context.Context, queueName string, reason queue.Reason, now time.Time, id string) (time.Time, error) {
	q, ok := f.policy.Queue(queueName)
	if !ok {
		return time.Time{}, fmt.Errorf("quoting for queue %s: %w", queueName, queue.ErrUnknownQueue)
	}
	floor, err := q.DeadlineFrom(now, reason)
	if err != nil {
		return time.Time{}, fmt.Errorf("quoting for queue %s: %w", queueName, err)
	}
	in, err := f.Input(ctx, queueName, now)
	if err != nil {
		return time.Time{}, err
	}
	if id != "" {
		in.Promises = slices.DeleteFunc(in.Promises, func(p ForecastPromise) bool { return p.ID == id })
	}
	t, ok := QuoteFrom(in, floor)
	if !ok {
		return time.Time{}, fmt.Errorf("quoting a %s promise in queue %s: %w", reason, queueName, ErrNoQuote)
	}
	return t, nil
}

// QuoteFrom is the earliest deadline, not before floor, at which a new promise in the
// forecast of in is predicted to be reached in time without making a promise already made
// late. A later deadline puts the new promise behind more of the others, so its predicted
// connect only moves later and it delays fewer of them: the search starts at floor and moves
// to the predicted connect, or behind the first promise it would make late, until neither
// happens.
func QuoteFrom(in ForecastInput, floor time.Time) (time.Time, bool) {
	before := map[string]bool{}
	for _, p := range Forecast(in) {
		before[p.ID] = p.AtRisk()
	}
	promises := append(make([]ForecastPromise, 0, len(in.Promises)+1), in.Promises...)
	x := floor
	for range quoteRounds {
		probe := in
		probe.Promises = append(promises, ForecastPromise{ID: quoteID, Deadline: x})
		var c, broken time.Time
		for _, p := range Forecast(probe) {
			switch {
			case p.ID == quoteID:
				c = p.Connect
			case p.AtRisk() && !before[p.ID] && broken.IsZero():
				broken = p.Deadline
			}
		}
		switch {
		case c.IsZero():
			return time.Time{}, false
		case c.After(x):
			x = c
		case !broken.IsZero():
			x = broken // behind it: equal deadlines keep the older promise first
		default:
			return x, true
		}
		// Whole minutes: a promise is spoken and shown in minutes.
		if r := x.Truncate(time.Minute); r.Before(x) {
			x = r.Add(time.Minute)
		}
	}
	return x, true
}

// flagAtRiskFromStart asks the quote whether the policy's deadline of req can be kept; when it
// cannot, the promise is made anyway (the customer was told nothing else) and flagged, so the
// administrator sees that the policy promises more than the staff can keep.
func (in *Intake) flagAtRiskFromStart(ctx context.Context, req *queue.Request, now time.Time) {
	if in.opts.Quote == nil {
		return
	}
	honest, err := in.opts.Quote(ctx, req.Queue, req.Reason, now)
	switch {
	case errors.Is(err, ErrNoQuote):
		req.AtRiskFromStart = true
	case err != nil:
		in.log.Warn("quoting the promise failed; it is made unflagged", zap.String("queue", req.Queue), zap.Error(err))
	case honest.After(req.Deadline):
		req.AtRiskFromStart = true
	}
}

// reportAtRiskFromStart counts and logs a new promise the forecast already says will be late.
func (in *Intake) reportAtRiskFromStart(r IntakeResult) {
	if r.Err != nil || r.Merged || r.Resolution != nil || !r.Job.AtRiskFromStart {
		return
	}
	in.opts.Metrics.atRiskFromStart(r.Job.Queue, r.Job.Reason())
	in.log.Warn("promise made at risk from the start: the staff on the rota cannot keep the policy's deadline",
		zap.String("promise", r.Job.ID), zap.String("queue", r.Job.Queue), zap.String("reason", string(r.Job.Reason())),
		zap.String("number", in.opts.Mask(r.Job.Number)), zap.Time("deadline", r.Job.Deadline))
}
