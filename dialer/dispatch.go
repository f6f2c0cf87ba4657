package dialer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// Promises is what the dispatcher needs from the promise store.
type Promises interface {
	Claim(ctx context.Context, queueName string, o queue.ClaimOptions) (*queue.Job, error)
	Extend(ctx context.Context, ref queue.Ref, token int64, d time.Duration) (queue.Job, error)
	MarkConnected(ctx context.Context, ref queue.Ref, token int64, at time.Time) (queue.Job, error)
	Complete(ctx context.Context, ref queue.Ref, token int64, outcome queue.State, detail string) (queue.Job, error)
	Retry(ctx context.Context, ref queue.Ref, token int64, notBefore time.Time, detail string) (queue.Job, error)
	Release(ctx context.Context, ref queue.Ref, token int64, notBefore time.Time, detail string) (queue.Job, error)
	Reclaim(ctx context.Context, queueName string) (queue.ReclaimResult, error)
	NextDue(ctx context.Context, queueName string) (time.Time, bool, error)
	NextLeaseExpiry(ctx context.Context, queueName string) (time.Time, bool, error)
	Head(ctx context.Context, queueName string) (time.Time, bool, error)
}

// Reservations keep two daemons sharing one Redis from ringing the same agent.
type Reservations interface {
	Reserve(ctx context.Context, agent, holder string, lease time.Duration) (bool, error)
	Renew(ctx context.Context, agent, holder string, lease time.Duration) (bool, error)
	Release(ctx context.Context, agent, holder string) (bool, error)
}

// Steps of a callback, as reported to DispatcherOptions.OnProgress.
const (
	StepAgentRung        = "agent rung"
	StepWhisper          = "whisper"
	StepCustomerDialled  = "customer dialled"
	StepCustomerAnswered = "customer answered"
	StepSettled          = "settled"
)

// Progress is one step of one callback, for timelines (demo) and tests.
type Progress struct {
	At    time.Time
	Step  string
	Job   queue.Job
	Agent string
	// Detail says more: the whisper media, why a callback ended.
	Detail string
	// For StepSettled: the promise's state afterwards (pending again, kept, late, ...) and
	// what each leg did ("" when it was never rung).
	State                       queue.State
	AgentResult, CustomerResult string
}

// DispatcherOptions wire a Dispatcher.
type DispatcherOptions struct {
	Config       *config.Config
	Store        Promises
	Reservations Reservations
	Pool         *Pool
	Control      *Control
	PBXs         PBXs
	Metrics      *Metrics
	Clock        clock.Clock
	Logger       *zap.Logger
	// Instance names this daemon in leases and reservations; unique per process.
	Instance string
	// Wakeups, when set, says when any daemon sharing Redis made a promise pending
	// (queue.Store.Wakeups), so promises made elsewhere are dialled at once.
	Wakeups func(ctx context.Context) <-chan struct{}
	// Rescan bounds how long the dispatcher sleeps without any event, a safety net for
	// wake-ups lost while Redis was unreachable. Default 2m.
	Rescan time.Duration
	// Mask shows a phone number in logs; nil → phone.Mask (log.mask_numbers).
	Mask func(string) string
	// OnProgress, when set, hears every step of every callback.
	OnProgress func(Progress)
}

// Dispatcher hands due promises to free agents, earliest deadline first, and runs each
// callback. It sleeps until something can change: an agent freed, a promise made, a delayed
// promise due, calling hours opening, a lease running out.
type Dispatcher struct {
	cfg     *config.Config
	store   Promises
	resv    Reservations
	pool    *Pool
	control *Control
	pbxs    PBXs
	m       *Metrics
	clk     clock.Clock
	log     *zap.Logger
	opts    DispatcherOptions

	wake        chan struct{}
	wg          sync.WaitGroup
	nextReclaim time.Time

	mu     sync.Mutex
	active map[string]queue.Ref // agent id → promise in progress
	handle time.Duration        // moving average of how long an agent is taken by a callback
}

// initialHandle is the guess at a callback's length until this daemon has made some: a few
// minutes of conversation plus ringing and whisper.
const initialHandle = 5 * time.Minute

// HandleTime is the moving average of how long a callback takes an agent away, wrap-up
// included: what the at-risk forecast plans with.
func (d *Dispatcher) HandleTime() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.handle
}

// NewDispatcher checks the options and returns a Dispatcher; Run starts it.
func NewDispatcher(o DispatcherOptions) (*Dispatcher, error) {
	if o.Config == nil || o.Store == nil || o.Reservations == nil || o.Pool == nil || o.Control == nil || o.PBXs == nil {
		return nil, errors.New("dialer: a dispatcher needs config, store, reservations, pool, control and PBXs")
	}
	if o.Instance == "" || strings.ContainsAny(o.Instance, " \t\r\n") {
		return nil, fmt.Errorf("dialer: instance name %q must be non-empty without spaces", o.Instance)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Mask == nil {
		o.Mask = phone.Mask
	}
	if o.Rescan <= 0 {
		o.Rescan = 2 * time.Minute
	}
	return &Dispatcher{cfg: o.Config, store: o.Store, resv: o.Reservations, pool: o.Pool, control: o.Control,
		pbxs: o.PBXs, m: o.Metrics, clk: o.Clock, log: o.Logger, opts: o,
		wake: make(chan struct{}, 1), active: map[string]queue.Ref{}, handle: initialHandle}, nil
}

// Wake makes the dispatcher look again at once: an agent may be free, a promise due.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Active is how many callbacks are in progress.
func (d *Dispatcher) Active() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.active)
}

// Run dispatches until ctx ends, then stops claiming, lets calls in progress finish for
// dialer.shutdown_grace, hangs up what is left and hands every unfinished promise back.
func (d *Dispatcher) Run(ctx context.Context) error {
	calls, stopCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCalls()
	var elsewhere <-chan struct{}
	if d.opts.Wakeups != nil {
		elsewhere = d.opts.Wakeups(ctx)
	}
	for ctx.Err() == nil {
		next := d.pass(ctx, calls)
		wait := d.opts.Rescan
		if !next.IsZero() {
			if w := next.Sub(d.clk.Now()); w < wait {
				wait = w
			}
		}
		if wait < 10*time.Millisecond {
			wait = 10 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-d.wake:
		case _, ok := <-elsewhere:
			if !ok {
				elsewhere = nil
			}
		case <-d.clk.After(wait):
		}
	}
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	if n := d.Active(); n > 0 {
		d.log.Info("stopping: waiting for callbacks in progress", zap.Int("calls", n),
			zap.Duration("grace", d.cfg.Dialer.ShutdownGrace.D()))
	}
	select {
	case <-done:
	case <-d.clk.After(d.cfg.Dialer.ShutdownGrace.D()):
		d.log.Warn("grace period over: hanging up callbacks in progress", zap.Int("calls", d.Active()))
		stopCalls()
		<-done
	}
	return nil
}

// pass reclaims expired leases, gives every free agent the best due promise and returns when
// the next look is needed (zero: only the rescan).
func (d *Dispatcher) pass(ctx context.Context, calls context.Context) time.Time {
	now := d.clk.Now()
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if !now.Before(d.nextReclaim) {
		d.reclaim(ctx)
	}
	consider(d.nextReclaim)
	if t, ok := d.pool.NextChange(); ok {
		consider(t)
	}
	free := d.pool.Free()
	if len(free) == 0 {
		return next
	}
	heads := map[string]time.Time{}
	for _, q := range d.cfg.Queues {
		if !q.CallingHours.Open(now) {
			if due, ok, err := d.store.NextDue(ctx, q.Name); err == nil && ok {
				consider(laterOf(nextOpening(q.CallingHours, now), due))
			}
			continue
		}
		head, ok, err := d.store.Head(ctx, q.Name)
		if err != nil {
			d.log.Error("reading the head of a queue failed", zap.String("queue", q.Name), zap.Error(err))
			consider(now.Add(time.Second))
			continue
		}
		if ok {
			heads[q.Name] = head
			continue
		}
		if due, ok, err := d.store.NextDue(ctx, q.Name); err == nil && ok {
			consider(due)
		}
	}
	if len(heads) == 0 {
		return next
	}
	available := d.pool.Available()
	var emptied []string // queues a claim in this pass left with nothing due
	for i, a := range free {
		if len(heads) == 0 {
			break
		}
		var qs []string
		for name := range heads {
			if (config.Agent{Queues: a.Queues}).Serves(name) {
				qs = append(qs, name)
			}
		}
		if len(qs) == 0 {
			continue
		}
		sort.Slice(qs, func(i, j int) bool {
			if !heads[qs[i]].Equal(heads[qs[j]]) {
				return heads[qs[i]].Before(heads[qs[j]])
			}
			return qs[i] < qs[j]
		})
		job, holdEnds := d.claimFor(ctx, a, qs, available)
		consider(holdEnds)
		if job == nil {
			continue
		}
		// Ring first: the queue's new head matters only to the agents after this one.
		d.start(calls, a, *job)
		if i == len(free)-1 {
			break
		}
		if head, ok, err := d.store.Head(ctx, job.Queue); err == nil && ok {
			heads[job.Queue] = head
		} else {
			delete(heads, job.Queue)
			emptied = append(emptied, job.Queue)
		}
	}
	// An agent may still be free while a queue emptied by this pass has promises that are not
	// due yet: look again when the first becomes due. (Queues with nothing due at the start
	// were asked above.)
	for _, name := range emptied {
		if t, ok, err := d.store.NextDue(ctx, name); err == nil && ok {
			consider(t)
		}
	}
	return next
}

// claimFor reserves agent a and claims the best promise for it from qs (earliest head first).
// Nothing claimed: the reservation is given back, and holdEnds says when a promise held for
// another agent's preference window becomes anyone's.
func (d *Dispatcher) claimFor(ctx context.Context, a AgentView, qs []string, available []string) (*queue.Job, time.Time) {
	lease := d.cfg.Dialer.Lease.D()
	ok, err := d.resv.Reserve(ctx, a.ID, d.opts.Instance, lease)
	if err != nil {
		d.log.Error("reserving an agent failed", zap.String("agent", a.ID), zap.Error(err))
		return nil, time.Time{}
	}
	if !ok {
		// Another daemon is calling with this agent; its device state will say when that
		// ends, but look again soon in case it gave the agent back without a call.
		return nil, d.clk.Now().Add(5 * time.Second)
	}
	var held []string
	for _, ext := range available {
		if ext != a.Extension {
			held = append(held, ext)
		}
	}
	var holdEnds time.Time
	for _, name := range qs {
		q, _ := d.cfg.Queue(name)
		job, err := d.store.Claim(ctx, name, queue.ClaimOptions{
			Worker: d.opts.Instance + "/" + a.ID, Lease: lease,
			Prefer: a.Extension, PreferShare: q.OwnerPreference, Held: held,
		})
		if err == nil {
			return job, time.Time{}
		}
		if errors.Is(err, queue.ErrEmpty) {
			if t, ok := queue.HoldEnds(err); ok && (holdEnds.IsZero() || t.Before(holdEnds)) {
				holdEnds = t
			}
			continue
		}
		d.log.Error("claiming a promise failed", zap.String("queue", name), zap.Error(err))
	}
	if _, err := d.resv.Release(ctx, a.ID, d.opts.Instance); err != nil {
		d.log.Warn("giving back an agent reservation failed; it runs out with its lease",
			zap.String("agent", a.ID), zap.Error(err))
	}
	return nil, holdEnds
}

// reclaim brings back promises whose callback died with its daemon, in every queue, and
// schedules the next look for the earliest lease expiry.
func (d *Dispatcher) reclaim(ctx context.Context) {
	now := d.clk.Now()
	d.nextReclaim = now.Add(d.opts.Rescan)
	for _, q := range d.cfg.Queues {
		res, err := d.store.Reclaim(ctx, q.Name)
		if err != nil {
			d.log.Error("reclaiming expired leases failed", zap.String("queue", q.Name), zap.Error(err))
			d.nextReclaim = now.Add(time.Second)
			continue
		}
		if res.Reclaimed > 0 {
			d.log.Warn("took back promises whose callback stopped renewing its lease",
				zap.String("queue", q.Name), zap.Int("reclaimed", res.Reclaimed), zap.Int("unreachable", res.GaveUp))
			d.m.reclaimed(q.Name, res)
		}
		if t, ok, err := d.store.NextLeaseExpiry(ctx, q.Name); err == nil && ok && t.Before(d.nextReclaim) {
			// A little after the expiry, so the lease holder's last renewal wins a close race.
			d.nextReclaim = t.Add(time.Second)
		}
	}
}

// start runs one callback in its own goroutine.
func (d *Dispatcher) start(calls context.Context, a AgentView, job queue.Job) {
	q, _ := d.cfg.Queue(job.Queue)
	pbx, ok := d.pbxs.PBX(a.Asterisk)
	d.pool.startCall(a.ID)
	d.mu.Lock()
	d.active[a.ID] = job.Ref()
	d.mu.Unlock()
	d.wg.Add(1)
	started := d.clk.Now()
	go func() {
		defer d.wg.Done()
		log := d.log.With(zap.String("promise", job.ID), zap.String("queue", job.Queue),
			zap.String("agent", a.ID), zap.String("number", d.opts.Mask(job.Number)))
		cb := &callback{d: d, pbx: pbx, agent: a, job: job, q: q, in: newInbox(), log: log}
		ctx, cancel := context.WithCancelCause(calls)
		renewed := make(chan struct{})
		go func() { defer close(renewed); d.renew(ctx, cancel, cb) }()
		var v verdict
		switch {
		case !d.cfg.Allowed(job.Number):
			log.Error("refusing to dial a number that dialer.allow does not allow; promise failed")
			v = verdict{kind: failed, detail: "number not allowed by dialer.allow"}
		case !ok:
			v = verdict{kind: release, cool: true, detail: "asterisk of agent " + a.ID + " not connected"}
		default:
			v = cb.run(ctx)
			if errors.Is(context.Cause(ctx), errTakenAway) {
				v.kind = taken
			}
		}
		cancel(nil)
		<-renewed
		d.settle(cb, v)
		if _, err := d.resv.Release(context.Background(), a.ID, d.opts.Instance); err != nil {
			log.Warn("giving back the agent reservation failed; it runs out with its lease", zap.Error(err))
		}
		var wrap, cool time.Duration
		if v.cool || v.agentResult == ResultNoAnswer || v.agentResult == ResultUnavailable {
			cool = d.cfg.Dialer.AgentCooldown.D()
		}
		if v.kind == connected {
			wrap = d.cfg.Dialer.WrapUp.D()
		}
		d.mu.Lock()
		delete(d.active, a.ID)
		if v.kind == connected {
			// Only calls that reached a customer say how long keeping a promise takes.
			took := d.clk.Now().Sub(started) + wrap
			d.handle = (4*d.handle + took) / 5
		}
		d.mu.Unlock()
		d.pool.endCall(a.ID, wrap, cool)
		d.Wake()
	}()
}

// renew keeps the promise's lease and the agent's reservation alive while the callback runs.
// A promise taken away (resolved, cancelled, reclaimed) stops the callback.
func (d *Dispatcher) renew(ctx context.Context, cancel context.CancelCauseFunc, cb *callback) {
	lease := d.cfg.Dialer.Lease.D()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.clk.After(lease / 3):
		}
		if _, err := d.store.Extend(ctx, cb.job.Ref(), cb.job.Lease.Token, lease); err != nil {
			if errors.Is(err, queue.ErrStaleToken) || errors.Is(err, queue.ErrWrongState) || errors.Is(err, queue.ErrNotFound) {
				cb.log.Warn("promise taken away during its callback; hanging up", zap.Error(err))
				cancel(errTakenAway)
				return
			}
			if ctx.Err() == nil {
				cb.log.Error("renewing the promise lease failed", zap.Error(err))
			}
		}
		// A lost reservation is logged, not acted on: hanging up on an agent mid-call would be
		// worse than another daemon possibly ringing them.
		if ok, err := d.resv.Renew(ctx, cb.agent.ID, d.opts.Instance, lease); err != nil && ctx.Err() == nil {
			cb.log.Error("renewing the agent reservation failed", zap.Error(err))
		} else if !ok && err == nil {
			cb.log.Warn("the agent reservation ran out during the callback; another daemon may ring this agent")
		}
	}
}

// settle writes a callback's verdict to the store and the metrics.
func (d *Dispatcher) settle(cb *callback, v verdict) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := d.clk.Now()
	job, ref, tok := cb.job, cb.job.Ref(), cb.job.Lease.Token
	d.m.attempt(job.Queue, LegAgent, v.agentResult)
	d.m.attempt(job.Queue, LegCustomer, v.custResult)
	var after queue.Job
	var err error
	switch v.kind {
	case taken:
		after, err = job, nil
		after.State = "taken"
	case release:
		after, err = d.store.Release(ctx, ref, tok, now, v.detail)
	case retry:
		nb := now.Add(cb.q.RetryBackoff.D())
		if v.now {
			nb = now
		}
		after, err = d.store.Retry(ctx, ref, tok, nb, v.detail)
	case failed:
		after, err = d.store.Complete(ctx, ref, tok, queue.StateFailed, v.detail)
	case connected:
		outcome := queue.StateKept
		if cb.connectedAt.After(job.Deadline) {
			outcome = queue.StateLate
		}
		after, err = d.store.Complete(ctx, ref, tok, outcome, v.detail)
		if errors.Is(err, queue.ErrOutcome) {
			// A request merged in during the call moved the deadline: the store judges by the
			// deadline it holds now.
			outcome = map[queue.State]queue.State{queue.StateKept: queue.StateLate, queue.StateLate: queue.StateKept}[outcome]
			after, err = d.store.Complete(ctx, ref, tok, outcome, v.detail)
		}
		if err == nil {
			d.m.connected(job, cb.connectedAt)
		}
	}
	if err != nil {
		cb.log.Error("settling the promise failed; its lease runs out and it comes back",
			zap.String("verdict", v.detail), zap.Error(err))
		return
	}
	if !after.State.Open() && after.State != "taken" {
		d.m.completed(job.Queue, after.State)
	}
	cb.log.Info("callback settled", zap.String("state", string(after.State)), zap.String("detail", v.detail),
		zap.String("agent_result", v.agentResult), zap.String("customer_result", v.custResult),
		zap.Int("attempts", after.Attempts))
	d.emit(Progress{At: now, Step: StepSettled, Job: after, Agent: cb.agent.ID, Detail: v.detail,
		State: after.State, AgentResult: v.agentResult, CustomerResult: v.custResult})
}

func (d *Dispatcher) progress(cb *callback, step, detail string) {
	if step == StepWhisper {
		// The whisper spells the customer's number; the log has it (masked) already.
		cb.log.Info("callback "+step, zap.Int("media", strings.Count(detail, ",")+1))
	} else {
		cb.log.Info("callback "+step, zap.String("detail", detail))
	}
	d.emit(Progress{At: d.clk.Now(), Step: step, Job: cb.job, Agent: cb.agent.ID, Detail: detail})
}

func (d *Dispatcher) emit(p Progress) {
	if d.opts.OnProgress != nil {
		d.opts.OnProgress(p)
	}
}

// whisper expands dialer.whisper for one promise. An item whose placeholder has no value
// (no name, no target) is left out rather than played wrong.
func (d *Dispatcher) whisper(job queue.Job, q config.Queue) []string {
	loc, err := q.CallingHours.Location()
	if err != nil {
		loc = time.UTC
	}
	dl := job.Deadline.In(loc)
	values := map[string]string{
		"{number}": strings.TrimPrefix(job.Number, "+"),
		"{name}":   mediaSafe(job.Name),
		"{reason}": strings.ReplaceAll(string(job.Reason()), "_", "-"),
		"{target}": mediaSafe(job.Target),
		"{hour}":   strconv.Itoa(dl.Hour()),
		"{minute}": strconv.Itoa(dl.Minute()),
	}
	var out []string
	for _, item := range d.cfg.Dialer.Whisper {
		ok := true
		for ph, v := range values {
			if strings.Contains(item, ph) {
				if v == "" {
					ok = false
				}
				item = strings.ReplaceAll(item, ph, v)
			}
		}
		if ok {
			out = append(out, item)
		}
	}
	return out
}

// mediaSafe keeps what may stand in a media URI: letters, digits, '-', '_' and '.'.
func mediaSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return -1
	}, s)
}

// nextOpening is when calling hours next open after t (t itself when open), within a week.
func nextOpening(h config.CallingHours, t time.Time) time.Time {
	if h.Open(t) {
		return t
	}
	loc, err := h.Location()
	if err != nil {
		return time.Time{}
	}
	start, err := time.Parse("15:04", h.Start)
	if err != nil {
		return time.Time{}
	}
	local := t.In(loc)
	for i := 0; i <= 7; i++ {
		day := local.AddDate(0, 0, i)
		c := time.Date(day.Year(), day.Month(), day.Day(), start.Hour(), start.Minute(), 0, 0, loc)
		if c.After(t) && h.Open(c) {
			return c
		}
	}
	return time.Time{}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
