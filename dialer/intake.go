// Package dialer is callbackd's engine: it turns what the detector saw into promises (Intake)
// and, from the dialer milestone on, keeps them by ringing agents and customers.
package dialer

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// PromiseStore is what Intake needs from the promise store.
type PromiseStore interface {
	Enqueue(ctx context.Context, r queue.Request) (queue.Job, queue.EnqueueResult, error)
	Resolve(ctx context.Context, queueName, number, detail string) (queue.Job, error)
	Get(ctx context.Context, ref queue.Ref) (queue.Job, error)
}

// AskedMemory is where Intake remembers which promises a number is owed (queue.Asked), so a
// later call reaching the business resolves them, on any daemon and after a restart.
type AskedMemory interface {
	Remember(ctx context.Context, number string, ref queue.Ref, until, now time.Time) error
	Recall(ctx context.Context, number string, now time.Time) ([]queue.Ref, error)
	Forget(ctx context.Context, number string, ref queue.Ref) error
}

// askedBeyondDeadline is how long after its deadline a promise stays resolvable by the
// customer's own call. A promise still open a day late is being chased by hand, if at all;
// the memory must not grow with every number ever owed a callback.
const askedBeyondDeadline = 24 * time.Hour

// IntakeResult is one thing Intake did, for timelines and tests.
type IntakeResult struct {
	// Request is the detector's request, or zero for a resolution.
	Request detect.Request
	// Resolution is set when the customer reached the business themselves: the reach that
	// resolved Job.
	Resolution *detect.Reach
	// Job is the promise made, merged into or resolved.
	Job    queue.Job
	Merged bool
	// Duplicate: the call had already made this request (another daemon watching the same
	// Asterisk, or this one before a restart); nothing was stored.
	Duplicate bool
	// Rule says what chose the request's queue: a detector.routes entry, the target's agent
	// queue or the default queue.
	Rule string
	// Err is set when the request was refused for good (bad number, no such queue).
	Err error
}

// IntakeOptions configure an Intake.
type IntakeOptions struct {
	Policy Policy
	Store  PromiseStore
	// Asked remembers the promises each number is owed; nil: a customer's own call resolves
	// nothing.
	Asked AskedMemory
	// Metrics, when set, counts the promises made and resolved.
	Metrics *Metrics
	Clock   clock.Clock
	Logger  *zap.Logger
	// Retry is the first wait after Redis failed; it doubles up to RetryMax. Defaults 500ms/30s.
	Retry, RetryMax time.Duration
	// Mask shows a phone number in logs; nil → phone.Mask (log.mask_numbers).
	Mask func(string) string
	// Quote, when set, is the forecast's honest deadline (Forecaster.Quote): a promise whose
	// policy deadline is earlier is made anyway and flagged at risk from the start.
	Quote func(ctx context.Context, queueName string, reason queue.Reason, now time.Time) (time.Time, error)
	// Limiter, when set, counts every request against Policy.Limits (shared by daemons).
	Limiter Limiter
	// OnResult, when set, is called after each request or resolution is settled.
	OnResult func(IntakeResult)
}

// Intake is a detect.Sink that turns callback requests into promises in the store: in the
// queue Policy.Route picks (detector.routes, else the target's agent queue, else the default
// queue), with the deadline of that queue for the reason.
//
// The detector calls Request from the goroutine that delivers ARI events, which must never
// wait for Redis; Intake therefore only appends to a backlog, and Run stores it. When Redis is
// down the backlog waits and is retried with backoff, so a Redis restart loses no request —
// only a daemon crash during an outage would.
type Intake struct {
	opts IntakeOptions
	log  *zap.Logger

	mu      sync.Mutex
	backlog []item
	wake    chan struct{}
}

type item struct {
	req *detect.Request
	res *detect.Reach
}

// NewIntake checks the options and returns an Intake; call Run to start storing.
func NewIntake(opts IntakeOptions) (*Intake, error) {
	if opts.Store == nil {
		return nil, errors.New("dialer: intake needs a promise store")
	}
	if len(opts.Policy.Queues) == 0 {
		return nil, errors.New("dialer: intake needs at least one queue")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Mask == nil {
		opts.Mask = phone.Mask
	}
	if opts.Retry <= 0 {
		opts.Retry = 500 * time.Millisecond
	}
	if opts.RetryMax < opts.Retry {
		opts.RetryMax = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Intake{opts: opts, log: log, wake: make(chan struct{}, 1)}, nil
}

// Request implements detect.Sink.
func (in *Intake) Request(r detect.Request) { in.push(item{req: &r}) }

// Reached implements detect.Sink.
func (in *Intake) Reached(r detect.Reach) { in.push(item{res: &r}) }

func (in *Intake) push(it item) {
	in.mu.Lock()
	in.backlog = append(in.backlog, it)
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// Pending is how many requests wait to be stored.
func (in *Intake) Pending() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.backlog)
}

// Run stores the backlog in order until ctx ends.
func (in *Intake) Run(ctx context.Context) error {
	wait := in.opts.Retry
	for {
		in.mu.Lock()
		var next *item
		if len(in.backlog) > 0 {
			next = &in.backlog[0]
		}
		in.mu.Unlock()
		if next == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-in.wake:
			}
			continue
		}
		if err := in.settle(ctx, *next); err != nil {
			in.log.Warn("storing callback request failed; will retry", zap.Error(err), zap.Duration("retry_in", wait))
			select {
			case <-ctx.Done():
				return nil
			case <-in.opts.Clock.After(wait):
			}
			wait = min(2*wait, in.opts.RetryMax)
			continue
		}
		wait = in.opts.Retry
		in.mu.Lock()
		in.backlog = in.backlog[1:]
		in.mu.Unlock()
	}
}

// settle stores one item. It returns an error only when trying again may help.
func (in *Intake) settle(ctx context.Context, it item) error {
	if it.res != nil {
		return in.resolve(ctx, *it.res)
	}
	r := *it.req
	q, rule := in.QueueFor(r)
	result := IntakeResult{Request: r, Rule: rule}
	// One instant for the deadline and for the quote that judges it.
	now := in.opts.Clock.Now()
	req, err := in.promise(r, q, now)
	if err == nil {
		err = in.screen(ctx, r.Number, callEvent(r))
	}
	if err == nil {
		rule = in.joinElsewhere(ctx, &req, q, rule)
	}
	if err == nil {
		in.flagAtRiskFromStart(ctx, &req, now)
		result.Job, result.Merged, result.Duplicate, err = in.enqueue(ctx, req)
	}
	if err == nil && !result.Duplicate {
		in.remember(ctx, r.Number, result.Job)
	}
	if err != nil && (retryable(err) || ctx.Err() != nil) {
		return err
	}
	result.Err = err
	fields := []zap.Field{zap.String("number", in.opts.Mask(r.Number)), zap.String("reason", string(r.Reason)),
		zap.String("target", r.Target), zap.String("queue", q.Name), zap.String("queue_rule", rule),
		zap.String("linkedid", r.LinkedID)}
	if r.VoicemailGap {
		fields = append(fields, zap.Bool("voicemail_gap", true))
	}
	switch {
	case err != nil:
		in.log.Error("callback request refused", append(fields, zap.String("refusal", string(refusalOf(err))), zap.Error(err))...)
	case result.Duplicate:
		in.log.Info("callback request already made by this call (another daemon, or before a restart)",
			append(fields, zap.String("promise", result.Job.ID))...)
	case result.Merged:
		in.log.Info("callback request merged into open promise", append(fields, zap.String("promise", result.Job.ID))...)
	default:
		in.log.Info("callback promise made", append(fields, zap.String("promise", result.Job.ID), zap.Time("deadline", result.Job.Deadline))...)
		in.reportAtRiskFromStart(result)
	}
	in.report(result)
	return nil
}

// callEvent names the missed call a detector request comes from, for counting it once
// against the rate limits: Asterisk's entity id and the call's linkedid, no number.
func callEvent(r detect.Request) string {
	if r.LinkedID == "" {
		return ""
	}
	return r.AsteriskID + ":" + r.LinkedID
}

// joinElsewhere moves req into another queue where its number has an open promise it should
// join (openElsewhere), and says so in the routing rule. Deadline and hold stay as q promises
// them; the store's merge keeps the earlier deadline and adds the reason and target.
func (in *Intake) joinElsewhere(ctx context.Context, req *queue.Request, q QueuePolicy, rule string) string {
	if other, ok := in.openElsewhere(ctx, req.Number, q); ok {
		req.Queue = other
		rule += "; one promise per customer: joined the open promise in " + other
	}
	return rule
}

// openElsewhere names another queue where number already has an open promise that this
// request should join (queues[].promise_per: customer, on both sides), from the memory of
// what the number is owed. A failed read is logged and the request stays in its own queue:
// two callbacks are better than none.
func (in *Intake) openElsewhere(ctx context.Context, number string, q QueuePolicy) (string, bool) {
	if q.PerQueue || in.opts.Asked == nil {
		return "", false
	}
	refs, err := in.opts.Asked.Recall(ctx, number, in.opts.Clock.Now())
	if err != nil {
		in.log.Warn("reading what the number is owed failed; the request keeps its own queue",
			zap.String("number", in.opts.Mask(number)), zap.Error(err))
		return "", false
	}
	join := ""
	for _, ref := range refs {
		other, ok := in.opts.Policy.Queue(ref.Queue)
		if !ok || (other.PerQueue && ref.Queue != q.Name) {
			continue
		}
		job, err := in.opts.Store.Get(ctx, ref)
		switch {
		case err != nil || !job.State.Open():
		case ref.Queue == q.Name:
			return "", false // an open promise here: the store merges into it
		case join == "":
			join = ref.Queue
		}
	}
	return join, join != ""
}

func (in *Intake) enqueue(ctx context.Context, req queue.Request) (job queue.Job, merged, duplicate bool, err error) {
	job, res, err := in.opts.Store.Enqueue(ctx, req)
	return job, res.Merged, res.Duplicate, err
}

// promise builds the store request for a detector request in queue q.
func (in *Intake) promise(r detect.Request, q QueuePolicy, now time.Time) (queue.Request, error) {
	deadline, err := q.DeadlineFrom(now, r.Reason)
	if err != nil {
		return queue.Request{}, err
	}
	req := queue.Request{
		Queue:       q.Name,
		Number:      r.Number,
		Name:        r.Name,
		Reason:      r.Reason,
		Target:      r.Target,
		Deadline:    deadline,
		HoldUntil:   q.HoldUntil(now, deadline),
		MaxAttempts: q.MaxAttempts,
		Source:      queue.Source{AsteriskID: r.AsteriskID, LinkedID: r.LinkedID, Channel: r.Channel},
		OncePerCall: true,
	}
	if r.VoicemailGap {
		// A voicemail whose end the detector did not see says so on the promise.
		req.Note = detect.VoicemailGapNote
	}
	return req, nil
}

// remember records that number is owed job. A failure is only logged: the promise is made and
// must not be made twice by a retry; the worst that follows is a callback the customer's own
// call would have made unnecessary.
func (in *Intake) remember(ctx context.Context, number string, job queue.Job) {
	if in.opts.Asked == nil {
		return
	}
	if err := in.opts.Asked.Remember(ctx, number, job.Ref(), job.Deadline.Add(askedBeyondDeadline), in.opts.Clock.Now()); err != nil {
		in.log.Warn("remembering the promise for the customer's next call failed; their own call will not resolve it",
			zap.String("number", in.opts.Mask(number)), zap.String("promise", job.ID), zap.Error(err))
	}
}

// resolve closes the open promises the customer's reach settles: those whose targets include
// the one reached, and, in a queue with ResolveByQueue, those of a queue an agent reached
// serves. A callback would only disturb a customer who got what they called about.
func (in *Intake) resolve(ctx context.Context, r detect.Reach) error {
	if in.opts.Asked == nil {
		return nil
	}
	refs, err := in.opts.Asked.Recall(ctx, r.Number, in.opts.Clock.Now())
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if err := in.resolveOne(ctx, r, ref); err != nil {
			return err
		}
	}
	return nil
}

func (in *Intake) resolveOne(ctx context.Context, r detect.Reach, ref queue.Ref) error {
	fields := []zap.Field{zap.String("number", in.opts.Mask(r.Number)), zap.String("target", r.Target),
		zap.String("queue", ref.Queue), zap.String("promise", ref.ID), zap.String("linkedid", r.LinkedID)}
	job, err := in.opts.Store.Get(ctx, ref)
	switch {
	case errors.Is(err, queue.ErrNotFound) || errors.Is(err, queue.ErrUnknownQueue) || (err == nil && !job.State.Open()):
		return in.forget(ctx, r.Number, ref) // over (kept, cancelled, expired...): nothing to resolve
	case err != nil && (retryable(err) || ctx.Err() != nil):
		return err
	case err != nil:
		in.log.Error("reading the promise a customer's call may resolve failed", append(fields, zap.Error(err))...)
		return nil
	}
	why, ok := in.resolvedBy(job, r.Target)
	if !ok {
		return nil
	}
	job, err = in.opts.Store.Resolve(ctx, ref.Queue, r.Number, "customer reached "+r.Target+" (linkedid "+r.LinkedID+")")
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return in.forget(ctx, r.Number, ref)
	case err != nil && (retryable(err) || ctx.Err() != nil):
		return err
	case err != nil:
		in.log.Error("resolving promise failed", append(fields, zap.Error(err))...)
		return nil
	}
	in.log.Info("promise resolved: the customer reached the business themselves", append(fields, zap.String("resolved_by", why))...)
	res := r
	in.report(IntakeResult{Resolution: &res, Job: job})
	return in.forget(ctx, r.Number, ref)
}

// resolvedBy says whether reaching target settles job, and why (for the log).
func (in *Intake) resolvedBy(job queue.Job, target string) (string, bool) {
	if slices.Contains(job.Targets, target) {
		return "target", true
	}
	q, ok := in.opts.Policy.Queue(job.Queue)
	if !ok || !q.ResolveByQueue {
		return "", false
	}
	for _, a := range in.opts.Policy.Agents {
		if a.Extension == target && a.Serves(job.Queue) {
			return "queue", true
		}
	}
	return "", false
}

func (in *Intake) forget(ctx context.Context, number string, ref queue.Ref) error {
	err := in.opts.Asked.Forget(ctx, number, ref)
	if err != nil && (retryable(err) || ctx.Err() != nil) {
		return err
	}
	return nil
}

func (in *Intake) report(r IntakeResult) {
	switch {
	case r.Err != nil:
		in.opts.Metrics.refused(refusalOf(r.Err))
	case r.Resolution != nil:
		in.opts.Metrics.completed(r.Job.Queue, queue.StateResolved)
	case r.Duplicate:
	case !r.Merged:
		in.opts.Metrics.made(r.Job.Queue, r.Job.Reason())
		if r.Request.VoicemailGap {
			in.opts.Metrics.madeFromGap(r.Job.Queue)
		}
	}
	if in.opts.OnResult != nil {
		in.opts.OnResult(r)
	}
}

// QueueFor returns the queue a promise for r belongs to and the rule that chose it (see
// Policy.Route).
func (in *Intake) QueueFor(r detect.Request) (QueuePolicy, string) { return in.opts.Policy.Route(r) }

// retryable tells a store failure that may pass (Redis down, a timeout) from a request the
// store refused on its merits, which must not be retried forever.
func retryable(err error) bool {
	var refused *RefusedError
	if errors.As(err, &refused) {
		return false
	}
	for _, permanent := range []error{queue.ErrInvalid, queue.ErrUnknownQueue, queue.ErrInvalidQueue, queue.ErrWrongState, phone.ErrInvalid} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	return true
}
