package dialer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// Promises is what the dispatcher needs from the promise store.
type Promises interface {
	PromiseLease
	Claim(ctx context.Context, queueName string, o queue.ClaimOptions) (*queue.Job, error)
	ReclaimExcept(ctx context.Context, queueName string, held []string) (queue.ReclaimResult, error)
	Expire(ctx context.Context, queueName string) (queue.ExpireResult, error)
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

// DispatcherOptions wire a Dispatcher.
type DispatcherOptions struct {
	Policy       Policy
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
	// Limiter, when set, counts every callback against Policy.Limits (shared by daemons).
	Limiter Limiter
	// OnProgress, when set, hears every step of every callback.
	OnProgress func(Progress)
	// Claimable, when set, says whether a promise may be claimed for an agent on the Asterisk
	// with this entity id. A connection that is down, or one of whose applications another
	// ARI client took over (ApplicationReplaced: two daemons with one instance id), would
	// start a callback whose channels' events go elsewhere; the monitor app may still report
	// the agents free meanwhile. nil: every Asterisk is.
	Claimable func(asteriskID string) bool
}

// Dispatcher hands due promises to free agents, earliest deadline first, and runs each
// callback. It sleeps until something can change: an agent freed, a promise made, a delayed
// promise due, calling hours opening, a lease running out.
type Dispatcher struct {
	policy Policy
	store  Promises
	resv   Reservations
	pool   *Pool
	pbxs   PBXs
	m      *Metrics
	clk    clock.Clock
	log    *zap.Logger
	opts   DispatcherOptions
	env    callEnv // what every callback it starts shares

	wake        chan struct{}
	wg          sync.WaitGroup
	nextReclaim time.Time

	mu     sync.Mutex
	active map[string]queue.Ref // agent id → promise in progress
	handle time.Duration        // moving average of how long an agent is taken by a callback
	// perQueue is the same average per queue, for the forecast (absent: handle).
	perQueue map[string]time.Duration
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

// HandleTimeFor is the moving average of a callback's length in one queue (the daemon's
// average until the queue has measured some): what the forecast plans that queue with.
func (d *Dispatcher) HandleTimeFor(queueName string) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.perQueue[queueName]; ok {
		return h
	}
	return d.handle
}

// NewDispatcher checks the options and returns a Dispatcher; Run starts it.
func NewDispatcher(o DispatcherOptions) (*Dispatcher, error) {
	if len(o.Policy.Queues) == 0 || o.Store == nil || o.Reservations == nil || o.Pool == nil || o.Control == nil || o.PBXs == nil {
		return nil, errors.New("dialer: a dispatcher needs a policy with queues, store, reservations, pool, control and PBXs")
	}
	if o.Policy.Calls.Allowed == nil || o.Policy.Calls.DialString == nil {
		return nil, errors.New("dialer: a dispatcher needs the allow-list and the customer dial string (Policy.Calls)")
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
	report := func(Progress) {}
	if o.OnProgress != nil {
		report = o.OnProgress
	}
	return &Dispatcher{policy: o.Policy, store: o.Store, resv: o.Reservations, pool: o.Pool,
		pbxs: o.PBXs, m: o.Metrics, clk: o.Clock, log: o.Logger, opts: o,
		env: callEnv{calls: o.Policy.Calls, store: o.Store, router: o.Control, devices: o.Pool,
			metrics: o.Metrics, clk: o.Clock, report: report, limiter: o.Limiter, limits: o.Policy.Limits},
		wake: make(chan struct{}, 1), active: map[string]queue.Ref{}, handle: initialHandle}, nil
}

// spinWait is the least wait between passes that each asked to look again at once.
const spinWait = 10 * time.Millisecond

// waitFor is how long the dispatcher waits after a pass that asked for the next look at next
// (zero: only the rescan), and how many passes in a row, this one included, asked to look
// again at once (again is the count before it). The wait is exact, so a delayed promise is
// claimed when it becomes due rather than up to a floor later. Only a pass that asks to look
// again at once right after another did is slowed down: what is due then is something no
// pass can act on yet, and the loop must not spin on it.
func waitFor(next, now time.Time, rescan time.Duration, again int) (time.Duration, int) {
	wait := rescan
	if !next.IsZero() {
		wait = min(wait, next.Sub(now))
	}
	if wait > 0 {
		return wait, 0
	}
	if again++; again > 1 {
		return spinWait, again
	}
	return 0, again
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
	again := 0 // passes in a row that asked to look again at once
	for ctx.Err() == nil {
		next := d.pass(ctx, calls)
		var wait time.Duration
		wait, again = waitFor(next, d.clk.Now(), d.opts.Rescan, again)
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-d.pool.Changed():
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
			zap.Duration("grace", d.policy.Calls.ShutdownGrace))
	}
	select {
	case <-done:
	case <-d.clk.After(d.policy.Calls.ShutdownGrace):
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
	free := d.claimable(d.pool.Free())
	if len(free) == 0 {
		return next
	}
	heads := map[string]time.Time{}
	for _, q := range d.policy.Queues {
		if !q.Hours.Open(now) {
			if due, ok, err := d.store.NextDue(ctx, q.Name); err == nil && ok {
				consider(laterOf(q.Hours.NextOpening(now), due))
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
			if a.Serves(name) {
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

// claimable keeps the free agents on an Asterisk promises may be claimed for now. The
// connection's return wakes the dispatcher (Wake), so the others are not forgotten.
func (d *Dispatcher) claimable(free []AgentView) []AgentView {
	if d.opts.Claimable == nil {
		return free
	}
	out := free[:0]
	for _, a := range free {
		if d.opts.Claimable(a.Asterisk) {
			out = append(out, a)
		}
	}
	return out
}

// claimFor reserves agent a and claims the best promise for it from qs (earliest head first).
// Nothing claimed: the reservation is given back, and holdEnds says when a promise held for
// another agent's preference window becomes anyone's.
func (d *Dispatcher) claimFor(ctx context.Context, a AgentView, qs []string, available []string) (*queue.Job, time.Time) {
	lease := d.policy.Calls.Lease
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
	if d.pool.heldElsewhere(ctx, a.ID) {
		// Another daemon's callback with this agent just ended: its wrap-up or cooldown,
		// now known here, says when to look again.
		if _, err := d.resv.Release(ctx, a.ID, d.opts.Instance); err != nil {
			d.log.Warn("giving back an agent reservation failed; it runs out with its lease",
				zap.String("agent", a.ID), zap.Error(err))
		}
		return nil, time.Time{}
	}
	var held []string
	for _, ext := range available {
		if ext != a.Extension {
			held = append(held, ext)
		}
	}
	var holdEnds time.Time
	for _, name := range qs {
		q, _ := d.policy.Queue(name)
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

// start runs one callback in its own goroutine: the callback keeps the promise, the
// dispatcher holds the agent (reservation, pool state) around it.
func (d *Dispatcher) start(calls context.Context, a AgentView, job queue.Job) {
	q, _ := d.policy.Queue(job.Queue)
	pbx, up := d.pbxs.PBX(a.Asterisk)
	d.pool.startCall(a.ID)
	d.mu.Lock()
	d.active[a.ID] = job.Ref()
	d.mu.Unlock()
	d.wg.Add(1)
	started := d.clk.Now()
	log := d.log.With(zap.String("promise", job.ID), zap.String("queue", job.Queue),
		zap.String("agent", a.ID), zap.String("number", d.opts.Mask(job.Number)))
	cb := &callback{env: d.env, pbx: pbx, pbxUp: up, agent: a, job: job, q: q, in: newInbox(), log: log}
	go func() {
		defer d.wg.Done()
		held, stopHolding := context.WithCancel(context.WithoutCancel(calls))
		holding := make(chan struct{})
		go func() { defer close(holding); d.holdAgent(held, a.ID, log) }()
		v := cb.keep(calls)
		stopHolding()
		<-holding
		wrap, cool := v.holdsAgentBack(d.policy.Calls)
		// The hold is shared before the reservation is given back: a daemon that reserves the
		// agent next finds it (heldElsewhere).
		d.pool.shareHold(a.ID, d.pool.holdFor(wrap, cool))
		if _, err := d.resv.Release(context.Background(), a.ID, d.opts.Instance); err != nil {
			log.Warn("giving back the agent reservation failed; it runs out with its lease", zap.Error(err))
		}
		d.mu.Lock()
		delete(d.active, a.ID)
		if v.kind == connected {
			// Only calls that reached a customer say how long keeping a promise takes.
			took := d.clk.Now().Sub(started) + wrap
			d.handle = (4*d.handle + took) / 5
			if d.perQueue == nil {
				d.perQueue = map[string]time.Duration{}
			}
			if h, ok := d.perQueue[job.Queue]; ok {
				d.perQueue[job.Queue] = (4*h + took) / 5
			} else {
				d.perQueue[job.Queue] = (4*initialHandle + took) / 5
			}
		}
		d.mu.Unlock()
		d.pool.endCall(a.ID, wrap, cool)
		d.Wake()
	}()
}

// holdAgent renews the agent's reservation until ctx ends. A lost reservation is logged, not
// acted on: hanging up on an agent mid-call would be worse than another daemon possibly
// ringing them.
func (d *Dispatcher) holdAgent(ctx context.Context, agentID string, log *zap.Logger) {
	lease := d.policy.Calls.Lease
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.clk.After(lease / 3):
		}
		if ok, err := d.resv.Renew(ctx, agentID, d.opts.Instance, lease); err != nil && ctx.Err() == nil {
			log.Error("renewing the agent reservation failed", zap.Error(err))
		} else if !ok && err == nil {
			log.Warn("the agent reservation ran out during the callback; another daemon may ring this agent")
		}
	}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
