package dialer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// The admin API's operations on promises: the one place a promise is made, moved or withdrawn
// from outside a call. A promise made here goes through the detector's intake — the same number
// checks, allow-list, rate limits, routing, merge and metrics — and is given the honest quote.

// ErrDeadlineBeforeQuote is a requested deadline the forecast says cannot be kept.
var ErrDeadlineBeforeQuote = errors.New("the requested deadline is earlier than the forecast can keep")

// DeadlineError is a requested deadline earlier than the quote; Quote is the earliest
// deadline that can be promised honestly.
type DeadlineError struct {
	Requested, Quote time.Time
}

func (e *DeadlineError) Error() string {
	return fmt.Sprintf("%v: requested %s, the earliest that can be kept is %s (send force to promise it anyway)",
		ErrDeadlineBeforeQuote, e.Requested.UTC().Format(time.RFC3339), e.Quote.UTC().Format(time.RFC3339))
}

func (e *DeadlineError) Unwrap() error { return ErrDeadlineBeforeQuote }

// FieldError is a bad value of one field of an admin request; Field is its name as the
// request spells it ("number", "window.deadline").
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

func fieldError(field string, err error) error { return &FieldError{Field: field, Err: err} }

// AdminStore is what the admin operations need of the promise store.
type AdminStore interface {
	Get(ctx context.Context, ref queue.Ref) (queue.Job, error)
	Cancel(ctx context.Context, ref queue.Ref, detail string) (queue.Job, error)
	Reschedule(ctx context.Context, ref queue.Ref, w queue.Window, detail string) (queue.Job, error)
	Page(ctx context.Context, queueName string, o queue.PageOptions) ([]queue.Job, queue.PagePos, error)
	Stats(ctx context.Context, queueName string) (queue.Stats, error)
	Outcomes(ctx context.Context, queueName string, window time.Duration) (map[queue.State]int64, error)
	ExportCustomer(ctx context.Context, number string) (queue.CustomerRecords, error)
	EraseCustomer(ctx context.Context, number string) (queue.Erased, error)
}

// IdempotencyKeys remembers which promise a client's idempotency key made (queue.Idempotency).
type IdempotencyKeys interface {
	Claim(ctx context.Context, scope, key, fingerprint string, ttl time.Duration) (queue.Ref, bool, error)
	Done(ctx context.Context, scope, key string, ref queue.Ref) error
	Forget(ctx context.Context, scope, key string) error
}

// DefaultIdempotencyTTL is how long a key answers with its promise: a client retries within
// minutes; a day covers one that retries after its own restart.
const DefaultIdempotencyTTL = 24 * time.Hour

// AdminOptions configure an Admin.
type AdminOptions struct {
	Intake     *Intake
	Store      AdminStore
	Forecaster *Forecaster
	// Idempotency, when set, makes idempotency keys work; without it a key is refused.
	Idempotency    IdempotencyKeys
	IdempotencyTTL time.Duration
	Clock          clock.Clock
	Logger         *zap.Logger
}

// Admin is the engine as the admin API sees it.
type Admin struct {
	opts   AdminOptions
	policy Policy
	log    *zap.Logger
}

// NewAdmin checks the options and returns the admin operations.
func NewAdmin(o AdminOptions) (*Admin, error) {
	if o.Intake == nil || o.Store == nil || o.Forecaster == nil {
		return nil, errors.New("dialer: the admin operations need the intake, the store and the forecaster")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.IdempotencyTTL <= 0 {
		o.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Admin{opts: o, policy: o.Intake.opts.Policy, log: o.Logger}, nil
}

// Queues lists the queue names in configuration order.
func (a *Admin) Queues() []string { return a.policy.QueueNames() }

// MakeRequest asks for a promise.
type MakeRequest struct {
	Number string `json:"number"`
	Name   string `json:"name,omitempty"`
	// Queue is the callback queue; "" lets the routing choose, as for a detector request.
	Queue string `json:"queue,omitempty"`
	// Reason defaults to queue.ReasonAPI.
	Reason queue.Reason `json:"reason,omitempty"`
	// NotBefore (zero: now) and Deadline (zero: the honest quote) are the window.
	NotBefore   time.Time `json:"not_before,omitzero"`
	Deadline    time.Time `json:"deadline,omitzero"`
	Note        string    `json:"note,omitempty"`
	ExternalRef string    `json:"external_ref,omitempty"`
	// Force makes a promise with a deadline earlier than the quote, or when none can be
	// kept; it is flagged at risk from the start.
	Force bool `json:"force,omitempty"`
}

// Made is what Make did.
type Made struct {
	Job queue.Job
	// Merged: the number had an open promise in the queue, which took the request.
	Merged bool
	// Replayed: the idempotency key had made Job already; nothing was done now.
	Replayed bool
	// Quote is the honest deadline at the time (zero when none could be kept, or replayed).
	Quote time.Time
	// Rule says what chose the queue.
	Rule string
}

// Make makes a promise for r, or merges it into the number's open one. With key (scoped by
// scope, the client) the first request's promise answers every replay of the same request,
// and another request with the key is queue.ErrIdempotencyConflict.
func (a *Admin) Make(ctx context.Context, scope, key string, r MakeRequest) (Made, error) {
	q, rule, err := a.check(&r)
	if err != nil {
		return Made{}, err
	}
	if key == "" {
		return a.make(ctx, r, q, rule)
	}
	if a.opts.Idempotency == nil {
		return Made{}, fieldError("Idempotency-Key", errors.New("idempotency keys are not kept by this daemon"))
	}
	sum, err := json.Marshal(r)
	if err != nil {
		return Made{}, fmt.Errorf("fingerprinting the request: %w", err)
	}
	// Keyed with the client's own key, which Redis never holds: a plain hash of a request
	// would give its number away to anyone hashing the few billion candidates, for as long
	// as the record lives — past an erase of the customer too.
	mac := hmac.New(sha256.New, []byte(scope+"\x00"+key))
	mac.Write(sum)
	ref, isNew, err := a.opts.Idempotency.Claim(ctx, scope, key, hex.EncodeToString(mac.Sum(nil)), a.opts.IdempotencyTTL)
	if err != nil {
		return Made{}, err
	}
	if !isNew {
		job, err := a.opts.Store.Get(ctx, ref)
		if err != nil {
			return Made{}, fmt.Errorf("reading the promise idempotency key made: %w", err)
		}
		return Made{Job: job, Replayed: true, Rule: rule}, nil
	}
	made, err := a.make(ctx, r, q, rule)
	if err != nil {
		// Nothing was made: a retry is judged afresh. A failure to forget leaves the key
		// taken until its TTL, which a retry hears as a conflict rather than a second promise.
		if ferr := a.opts.Idempotency.Forget(context.WithoutCancel(ctx), scope, key); ferr != nil {
			a.log.Warn("giving up an idempotency key failed", zap.Error(ferr))
		}
		return Made{}, err
	}
	if err := a.opts.Idempotency.Done(context.WithoutCancel(ctx), scope, key, made.Job.Ref()); err != nil {
		a.log.Warn("recording the promise of an idempotency key failed; a replay will be refused as a conflict",
			zap.String("promise", made.Job.ID), zap.Error(err))
	}
	return made, nil
}

// check normalizes r (number in E.164, default reason, the routed queue) and refuses what can
// never be promised, naming the field.
func (a *Admin) check(r *MakeRequest) (QueuePolicy, string, error) {
	n, err := phone.ParseE164(r.Number)
	if err != nil {
		return QueuePolicy{}, "", fieldError("number", fmt.Errorf("%w: %w", queue.ErrInvalid, err))
	}
	r.Number = n
	if r.Reason == "" {
		r.Reason = queue.ReasonAPI
	}
	if !slices.Contains(queue.Reasons(), r.Reason) {
		return QueuePolicy{}, "", fieldError("reason", fmt.Errorf("%w: unknown reason %q (known: %v)", queue.ErrInvalid, r.Reason, queue.Reasons()))
	}
	var q QueuePolicy
	rule := "the request"
	if r.Queue == "" {
		q, rule = a.policy.Route(detect.Request{Number: r.Number, Name: r.Name, Reason: r.Reason})
		r.Queue = q.Name
	} else {
		var ok bool
		if q, ok = a.policy.Queue(r.Queue); !ok {
			return QueuePolicy{}, "", fieldError("queue", fmt.Errorf("%w: %q (known: %v)", queue.ErrUnknownQueue, r.Queue, a.policy.QueueNames()))
		}
	}
	if _, ok := q.Deadlines[r.Reason]; !ok {
		return QueuePolicy{}, "", fieldError("reason", fmt.Errorf("%w: queue %s promises no callback for reason %s", queue.ErrInvalid, q.Name, r.Reason))
	}
	if !r.NotBefore.IsZero() && !r.Deadline.IsZero() && !r.NotBefore.Before(r.Deadline) {
		return QueuePolicy{}, "", fieldError("window.not_before", fmt.Errorf("%w: not before the deadline", queue.ErrInvalid))
	}
	return q, rule, nil
}

// make judges the window against the quote, screens the number and stores the promise as the
// intake does.
func (a *Admin) make(ctx context.Context, r MakeRequest, q QueuePolicy, rule string) (Made, error) {
	in := a.opts.Intake
	now := a.opts.Clock.Now()
	w, quote, err := a.window(ctx, q, r.Reason, r.NotBefore, r.Deadline, r.Force, now, "")
	if err != nil {
		return Made{}, err
	}
	if err := in.screen(ctx, r.Number, ""); err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) || errors.Is(err, queue.ErrInvalid) {
			err = fieldError("number", err)
		}
		return Made{}, err
	}
	req := queue.Request{Queue: q.Name, Number: r.Number, Name: r.Name, Reason: r.Reason, Deadline: w.Deadline,
		NotBefore: w.NotBefore, HoldUntil: w.HoldUntil, MaxAttempts: q.MaxAttempts, Note: r.Note,
		ExternalRef: r.ExternalRef, AtRiskFromStart: w.AtRisk, Source: queue.Source{AsteriskID: "api"}}
	rule = in.joinElsewhere(ctx, &req, q, rule)
	job, merged, _, err := in.enqueue(ctx, req) // not OncePerCall: never a duplicate
	if err != nil {
		return Made{}, storeFieldError(err)
	}
	in.remember(ctx, r.Number, job)
	result := IntakeResult{Request: detect.Request{Number: r.Number, Name: r.Name, Reason: r.Reason, At: now}, Job: job, Merged: merged, Rule: rule}
	fields := []zap.Field{zap.String("number", in.opts.Mask(r.Number)), zap.String("reason", string(r.Reason)),
		zap.String("queue", job.Queue), zap.String("queue_rule", rule), zap.String("promise", job.ID), zap.String("source", "api")}
	if merged {
		in.log.Info("callback request merged into open promise", fields...)
	} else {
		in.log.Info("callback promise made", append(fields, zap.Time("deadline", job.Deadline), zap.Bool("forced", r.Force))...)
		in.reportAtRiskFromStart(result)
	}
	in.report(result)
	return Made{Job: job, Merged: merged, Quote: quote, Rule: rule}, nil
}

// window is the promise's window at now: the deadline defaults to the honest quote (counted
// from the not-before, when it is later than now); an earlier one is a *DeadlineError and no
// keepable deadline at all is ErrNoQuote, unless force, which makes it at risk. except leaves
// a promise out of the forecast (the one being rescheduled).
func (a *Admin) window(ctx context.Context, q QueuePolicy, reason queue.Reason, notBefore, deadline time.Time, force bool, now time.Time, except string) (queue.Window, time.Time, error) {
	if notBefore.Before(now) {
		notBefore = time.Time{}
	}
	start := now
	if notBefore.After(now) {
		start = notBefore
	}
	floor, err := q.DeadlineFrom(start, reason)
	if err != nil {
		return queue.Window{}, time.Time{}, fieldError("reason", fmt.Errorf("%w: %w", queue.ErrInvalid, err))
	}
	quote, err := a.opts.Forecaster.QuoteWithout(ctx, q.Name, reason, now, except)
	noQuote := errors.Is(err, ErrNoQuote)
	if err != nil && !noQuote {
		return queue.Window{}, time.Time{}, err
	}
	if quote.Before(floor) && !noQuote {
		quote = floor
	}
	w := queue.Window{NotBefore: notBefore, Deadline: deadline}
	switch {
	case noQuote && !force:
		return queue.Window{}, time.Time{}, fmt.Errorf("quoting a %s promise in queue %s: %w", reason, q.Name, ErrNoQuote)
	case noQuote:
		w.AtRisk = true
		quote = time.Time{}
		if w.Deadline.IsZero() {
			w.Deadline = floor
		}
	case w.Deadline.IsZero():
		w.Deadline = quote
	case w.Deadline.Before(quote) && !force:
		return queue.Window{}, time.Time{}, fieldError("window.deadline", &DeadlineError{Requested: deadline, Quote: quote})
	case w.Deadline.Before(quote):
		w.AtRisk = true
	}
	if !w.Deadline.After(now) {
		return queue.Window{}, time.Time{}, fieldError("window.deadline", fmt.Errorf("%w: not in the future", queue.ErrInvalid))
	}
	if !w.NotBefore.IsZero() && !w.NotBefore.Before(w.Deadline) {
		return queue.Window{}, time.Time{}, fieldError("window.not_before", fmt.Errorf("%w: not before the deadline", queue.ErrInvalid))
	}
	created := now
	if !w.NotBefore.IsZero() {
		created = w.NotBefore
	}
	if h := q.HoldUntil(created, w.Deadline); !h.After(w.Deadline) {
		w.HoldUntil = h
	}
	return w, quote, nil
}

// storeFieldError names the field of a refusal the store made on the request's merits.
func storeFieldError(err error) error {
	if errors.Is(err, queue.ErrInvalid) {
		return fieldError("request", err)
	}
	return err
}

// Find reads the promise id from whichever queue holds it. Ids are unique across queues but do
// not name their queue, and there are only a few queues (the configuration's): trying each is
// a handful of reads and needs no index of its own that could go stale or outlive an erasure.
func (a *Admin) Find(ctx context.Context, id string) (queue.Job, error) {
	for _, name := range a.policy.QueueNames() {
		job, err := a.opts.Store.Get(ctx, queue.Ref{Queue: name, ID: id})
		if errors.Is(err, queue.ErrNotFound) {
			continue
		}
		if errors.Is(err, queue.ErrInvalid) {
			return queue.Job{}, fmt.Errorf("finding promise %q: %w (not a promise id)", id, queue.ErrNotFound)
		}
		return job, err
	}
	return queue.Job{}, fmt.Errorf("finding promise %s: %w", id, queue.ErrNotFound)
}

// Cancel withdraws an open promise, even one being dialled.
func (a *Admin) Cancel(ctx context.Context, id, detail string) (queue.Job, error) {
	job, err := a.Find(ctx, id)
	if err != nil {
		return queue.Job{}, err
	}
	if detail == "" {
		detail = "cancelled through the API"
	}
	return a.CancelRef(ctx, job.Ref(), detail)
}

// CancelRef cancels the open promise ref (the supervisor page's button, the API), counted in
// callbackd_promises_completed_total like every other end of a promise.
func (a *Admin) CancelRef(ctx context.Context, ref queue.Ref, detail string) (queue.Job, error) {
	j, err := a.opts.Store.Cancel(ctx, ref, detail)
	if err == nil && a.opts.Intake != nil {
		a.opts.Intake.opts.Metrics.completed(j.Queue, queue.StateCancelled)
	}
	return j, err
}

// Reschedule gives a pending promise a new window, judged against the honest quote as a new
// promise would be (without itself in the forecast).
func (a *Admin) Reschedule(ctx context.Context, id string, notBefore, deadline time.Time, force bool, detail string) (queue.Job, time.Time, error) {
	job, err := a.Find(ctx, id)
	if err != nil {
		return queue.Job{}, time.Time{}, err
	}
	if job.State != queue.StatePending {
		return queue.Job{}, time.Time{}, fmt.Errorf("rescheduling promise %s: %w: it is %s", id, queue.ErrWrongState, job.State)
	}
	q, ok := a.policy.Queue(job.Queue)
	if !ok {
		return queue.Job{}, time.Time{}, fmt.Errorf("rescheduling promise %s: %w: %s", id, queue.ErrUnknownQueue, job.Queue)
	}
	now := a.opts.Clock.Now()
	w, quote, err := a.window(ctx, q, job.Reason(), notBefore, deadline, force, now, job.ID)
	if err != nil {
		return queue.Job{}, time.Time{}, err
	}
	if detail == "" {
		detail = "rescheduled through the API"
	}
	job, err = a.opts.Store.Reschedule(ctx, job.Ref(), w, detail)
	if err != nil {
		return queue.Job{}, time.Time{}, storeFieldError(err)
	}
	return job, quote, nil
}

// Page reads the promises of one queue, or of all ("" queue) merged, earliest deadline first.
// A job that cannot be read is left out, and named in an error (queue.ErrSkipped) answered
// beside the page, as Store.Page does.
func (a *Admin) Page(ctx context.Context, queueName string, o queue.PageOptions) ([]queue.Job, queue.PagePos, error) {
	if queueName != "" {
		if _, ok := a.policy.Queue(queueName); !ok {
			return nil, queue.PagePos{}, fieldError("queue", fmt.Errorf("%w: %q", queue.ErrUnknownQueue, queueName))
		}
		return a.opts.Store.Page(ctx, queueName, o)
	}
	if o.Limit == 0 {
		o.Limit = 100
	}
	var all []queue.Job
	var skipped []error
	more := false
	for _, name := range a.policy.QueueNames() {
		jobs, next, err := a.opts.Store.Page(ctx, name, o)
		if errors.Is(err, queue.ErrSkipped) {
			skipped = append(skipped, err)
		} else if err != nil {
			return nil, queue.PagePos{}, err
		}
		all = append(all, jobs...)
		more = more || next.ID != ""
	}
	// The first Limit of each queue's first Limit are the first Limit of all; there are more
	// when the merge was cut or a queue had more of its own.
	jobs, next := queue.CutPage(all, o.After, o.Limit)
	if more && next.ID == "" && len(jobs) > 0 {
		last := jobs[len(jobs)-1]
		next = queue.PagePos{Deadline: last.Deadline, ID: last.ID}
	}
	return jobs, next, errors.Join(skipped...)
}

// Predictions is the forecast of queueName now, by promise id (pending promises only, the most
// urgent the forecast reads).
func (a *Admin) Predictions(ctx context.Context, queueName string) (map[string]Prediction, error) {
	preds, err := a.opts.Forecaster.Queue(ctx, queueName, a.opts.Clock.Now())
	if err != nil {
		return nil, err
	}
	out := make(map[string]Prediction, len(preds))
	for _, p := range preds {
		out[p.ID] = p
	}
	return out, nil
}

// Quote is the honest deadline for a new promise of reason (zero: queue.ReasonAPI) in queueName now.
func (a *Admin) Quote(ctx context.Context, queueName string, reason queue.Reason) (time.Time, error) {
	q, ok := a.policy.Queue(queueName)
	if !ok {
		return time.Time{}, fieldError("queue", fmt.Errorf("%w: %q (known: %v)", queue.ErrUnknownQueue, queueName, a.policy.QueueNames()))
	}
	if reason == "" {
		reason = queue.ReasonAPI
	}
	if _, ok := q.Deadlines[reason]; !ok {
		return time.Time{}, fieldError("reason", fmt.Errorf("%w: queue %s promises no callback for reason %q", queue.ErrInvalid, q.Name, reason))
	}
	return a.opts.Forecaster.Quote(ctx, queueName, reason, a.opts.Clock.Now())
}

// QueueSummary is one queue at a glance.
type QueueSummary struct {
	Name string
	// Open promises by state, and the pending ones split into due and waiting.
	Pending, Dialing, Connected, Due, Waiting int64
	// AtRisk is how many pending promises the forecast says will be late.
	AtRisk int
	// KeptRatio is kept ÷ (kept + late + unreachable + expired) over Window; NaN when none.
	KeptRatio float64
	Window    time.Duration
	Outcomes  map[queue.State]int64
	// Quotes is the honest deadline now per reason the queue promises; a reason with no
	// keepable deadline is missing.
	Quotes map[queue.Reason]time.Time
}

// Summaries describes every queue.
func (a *Admin) Summaries(ctx context.Context) ([]QueueSummary, error) {
	now := a.opts.Clock.Now()
	out := make([]QueueSummary, 0, len(a.policy.Queues))
	for _, q := range a.policy.Queues {
		st, err := a.opts.Store.Stats(ctx, q.Name)
		if err != nil {
			return nil, err
		}
		s := QueueSummary{Name: q.Name, Pending: st.Ready + st.Delayed, Due: st.Ready, Waiting: st.Delayed,
			Dialing: st.Dialing, Connected: st.Connected, Window: a.policy.KeptRatioWindow, KeptRatio: math.NaN(),
			Quotes: map[queue.Reason]time.Time{}}
		if s.Window > 0 {
			if s.Outcomes, err = a.opts.Store.Outcomes(ctx, q.Name, s.Window); err != nil {
				return nil, err
			}
			s.KeptRatio = KeptRatio(s.Outcomes)
		}
		preds, err := a.opts.Forecaster.Queue(ctx, q.Name, now)
		if err != nil {
			return nil, err
		}
		s.AtRisk = CountAtRisk(preds)
		for _, reason := range queue.Reasons() {
			if _, ok := q.Deadlines[reason]; !ok {
				continue
			}
			t, err := a.opts.Forecaster.Quote(ctx, q.Name, reason, now)
			switch {
			case errors.Is(err, ErrNoQuote):
			case err != nil:
				return nil, err
			default:
				s.Quotes[reason] = t
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// ExportCustomer is everything stored about number.
func (a *Admin) ExportCustomer(ctx context.Context, number string) (queue.CustomerRecords, error) {
	n, err := phone.ParseE164(number)
	if err != nil {
		return queue.CustomerRecords{}, fieldError("number", fmt.Errorf("%w: %w", queue.ErrInvalid, err))
	}
	return a.opts.Store.ExportCustomer(ctx, n)
}

// EraseCustomer deletes everything stored about number.
func (a *Admin) EraseCustomer(ctx context.Context, number string) (queue.Erased, error) {
	n, err := phone.ParseE164(number)
	if err != nil {
		return queue.Erased{}, fieldError("number", fmt.Errorf("%w: %w", queue.ErrInvalid, err))
	}
	erased, err := a.opts.Store.EraseCustomer(ctx, n)
	if err == nil {
		a.log.Info("customer erased through the API", zap.String("number", a.opts.Intake.opts.Mask(n)))
	}
	return erased, err
}
