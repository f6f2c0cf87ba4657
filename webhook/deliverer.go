package webhook

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// Deliverer sends every endpoint the events of every queue. What is promised:
//
//   - At least once: an event is acknowledged only after the endpoint answered 2xx, or it was
//     dead-lettered, or the endpoint does not take its type. A daemon that stops or dies
//     leaves its events pending; another daemon (or itself, restarted) takes them over.
//   - No order. One daemon sends one queue's events to one endpoint one at a time, in stream
//     order on the first attempt; several daemons share a stream, retries come when they are
//     due, and queues are delivered side by side. A receiver orders by the event's "at" and
//     tells repeats by webhook-id.
//   - A new endpoint gets the events from its first start on, not the stream's history.
type Deliverer struct {
	o       Options
	m       *metrics
	workers []*worker
}

// New builds a deliverer; nothing talks to Redis or the endpoints until Prepare or Run.
func New(o Options) (*Deliverer, error) {
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("building the webhook deliverer: %w", err)
	}
	m, err := newMetrics(o.Registerer, o.Endpoints)
	if err != nil {
		return nil, fmt.Errorf("building the webhook deliverer: registering its metrics: %w", err)
	}
	d := &Deliverer{o: o, m: m}
	for _, ep := range o.Endpoints {
		for _, q := range o.Streams.Queues() {
			d.workers = append(d.workers, newWorker(&d.o, m, ep, q))
		}
	}
	return d, nil
}

// Prepare creates the consumer groups that do not exist yet, each at the end of its stream.
// Run does it too; a caller that must not miss the next event calls it first.
func (d *Deliverer) Prepare(ctx context.Context) error {
	for _, w := range d.workers {
		if err := w.createGroup(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Run delivers until ctx ends. A Redis that is away pauses the deliveries, it does not end them.
func (d *Deliverer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, w := range d.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// worker delivers one queue's events to one endpoint.
type worker struct {
	o     *Options
	m     *metrics
	ep    Endpoint
	queue string
	l     ledger
	log   *zap.Logger
	wants map[queue.EventType]bool // nil: every type

	lease     time.Duration // how long one attempt holds its event
	claimIdle time.Duration

	// Owned by the worker's goroutine.
	ready       bool
	claimFrom   string
	failing     bool
	lastForgets time.Time
}

func newWorker(o *Options, m *metrics, ep Endpoint, q string) *worker {
	w := &worker{o: o, m: m, ep: ep, queue: q, l: newLedger(o.Redis, o.Streams.EventStreamKey(q), ep.Name),
		log:   o.Logger.With(zap.String("endpoint", ep.Name), zap.String("queue", q)),
		lease: ep.Timeout + 30*time.Second, claimIdle: o.ClaimIdle, claimFrom: "0-0"}
	if w.claimIdle <= 0 {
		// A live daemon gets to an event it read within its batch's timeouts.
		w.claimIdle = max(time.Minute, 2*(batch+1)*ep.Timeout)
	}
	if len(ep.Events) > 0 {
		w.wants = map[queue.EventType]bool{}
		for _, t := range ep.Events {
			w.wants[t] = true
		}
	}
	return w
}

func (w *worker) createGroup(ctx context.Context) error {
	err := w.o.Redis.XGroupCreateMkStream(ctx, w.l.stream, w.l.group, "$").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("creating consumer group %s on %s: %w", w.l.group, w.l.stream, err)
	}
	w.ready = true
	return nil
}

func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		worked, err := w.pass(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if strings.Contains(err.Error(), "NOGROUP") {
				w.ready = false
			}
			if !w.failing {
				w.log.Warn("webhook deliveries paused: the event stream cannot be read; retrying", zap.Error(err))
				w.failing = true
			}
			sleep(ctx, w.o.Poll)
			continue
		}
		if w.failing {
			w.log.Info("webhook deliveries resumed")
			w.failing = false
		}
		if !worked {
			sleep(ctx, w.o.Poll)
		}
	}
}

// sleep waits d or until ctx ends. A timer, not the clock: it only paces the polling of
// Redis, and a simulated clock that stands still must not stop it.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// pass does one round: due retries, events a dead consumer left, new events, then the lag.
// It reports whether it found anything to do; when not, the worker waits Poll. The questions
// go to Redis together, in one round trip: an idle worker asks them every Poll for each
// endpoint and queue. The reads never block in Redis: a blocked read would hold one of the
// client's pooled connections per endpoint and queue, which the rest of the daemon needs.
func (w *worker) pass(ctx context.Context) (worked bool, err error) {
	if !w.ready {
		if err := w.createGroup(ctx); err != nil {
			return false, err
		}
	}
	l := w.l
	var (
		dueCmd     *redis.StringSliceCmd
		leftCmd    *redis.XAutoClaimJustIDCmd
		newCmd     *redis.XStreamSliceCmd
		pendingCmd *redis.XPendingCmd
	)
	// Every command's own error is read below; the pipeline's is the first of them.
	_, _ = w.o.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		dueCmd = p.ZRangeByScore(ctx, l.due, &redis.ZRangeBy{Min: "-inf",
			Max: strconv.FormatInt(w.o.Clock.Now().UnixMilli(), 10), Count: batch})
		leftCmd = p.XAutoClaimJustID(ctx, &redis.XAutoClaimArgs{Stream: l.stream, Group: l.group,
			MinIdle: w.claimIdle, Start: w.claimFrom, Count: batch, Consumer: w.o.Instance})
		newCmd = p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: l.group, Consumer: w.o.Instance,
			Streams: []string{l.stream, ">"}, Count: batch, Block: -1})
		pendingCmd = p.XPending(ctx, l.stream, l.group)
		return nil
	})
	due, err := dueCmd.Result()
	if err != nil {
		return false, fmt.Errorf("reading the due retries: %w", err)
	}
	for _, id := range due {
		if err := w.handle(ctx, id, nil); err != nil {
			return false, err
		}
	}
	adopted, err := w.adopt(ctx, leftCmd)
	if err != nil {
		return false, err
	}
	streams, err := newCmd.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("reading new events of %s: %w", l.stream, err)
	}
	read := 0
	for _, s := range streams {
		for _, m := range s.Messages {
			read++
			if err := w.handle(ctx, m.ID, &m); err != nil {
				return false, err
			}
		}
	}
	if err := w.forgetDeadConsumers(ctx); err != nil {
		return false, err
	}
	if worked := len(due)+adopted+read > 0; worked {
		// What the pass did changed what is pending: the lag is measured afresh.
		return true, w.updateLag(ctx, nil)
	}
	return false, w.updateLag(ctx, pendingCmd)
}

// adopt takes over the events a consumer read and then left unattempted for claimIdle: its
// daemon died between reading and sending. Events with an attempt behind them are left to
// the due set, which says when they may be tried again. It returns how many it took on.
// left is the pass's XAUTOCLAIM, already answered.
func (w *worker) adopt(ctx context.Context, left *redis.XAutoClaimJustIDCmd) (int, error) {
	ids, next, err := left.Result()
	if err != nil {
		return 0, fmt.Errorf("taking over the events of stopped consumers of %s: %w", w.l.stream, err)
	}
	w.claimFrom = next
	scheduled, err := w.l.scheduled(ctx, ids)
	if err != nil {
		return 0, err
	}
	taken := 0
	for i, id := range ids {
		if scheduled[i] {
			continue
		}
		taken++
		w.log.Info("taking over an event another daemon read but did not send", zap.String("event", w.queue+"/"+id))
		if err := w.handle(ctx, id, nil); err != nil {
			return 0, err
		}
	}
	return taken, nil
}

// handle makes one attempt at the pending entry id (read from the stream when m is nil).
func (w *worker) handle(ctx context.Context, id string, m *redis.XMessage) error {
	if m == nil {
		msgs, err := w.o.Redis.XRangeN(ctx, w.l.stream, id, id, 1).Result()
		if err != nil {
			return fmt.Errorf("reading event %s/%s: %w", w.queue, id, err)
		}
		if len(msgs) == 0 {
			// Trimmed by retention or erased with its customer: there is nothing left to send.
			w.log.Info("webhook event is gone from the stream; not sent", zap.String("event", w.queue+"/"+id))
			return w.counted(ResultSkipped, w.l.done(ctx, id))
		}
		m = &msgs[0]
	}
	ev, err := queue.ParseEvent(w.queue, *m)
	if err != nil {
		w.log.Error("webhook event cannot be read; dead-lettered", zap.String("event", w.queue+"/"+id), zap.Error(err))
		return w.counted(ResultDeadLettered, w.l.dead(ctx, deadLetter{event: w.queue + "/" + id, streamID: id,
			reason: "unreadable: " + err.Error(), at: w.o.Clock.Now()}))
	}
	if w.wants != nil && !w.wants[ev.Type] {
		return w.counted(ResultSkipped, w.l.done(ctx, id))
	}
	now := w.o.Clock.Now()
	state, first, n, err := w.l.begin(ctx, id, now, w.lease)
	if err != nil {
		return err
	}
	if state == beginErased {
		w.log.Info("webhook event is gone from the stream; not sent", zap.String("event", w.queue+"/"+id))
		return w.counted(ResultSkipped, nil)
	}
	if state != beginGo {
		return nil
	}
	payload, err := body(ev, w.ep.MaskNumbers)
	if err != nil {
		return err
	}
	res := send(ctx, w.o.Client, w.ep, ev.ID, payload, now)
	// What follows is recorded even when the daemon is stopping: the attempt happened.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	log := w.log.With(zap.String("event", ev.ID), zap.String("type", string(ev.Type)), zap.Int("attempt", n))
	switch {
	case res.ok():
		log.Debug("webhook delivered", zap.Int("status", res.status))
		return w.counted(ResultDelivered, w.l.done(rctx, id))
	case ctx.Err() != nil:
		// Cut short by the stop: neither a failure of the endpoint nor a reason to wait.
		return w.l.release(rctx, id, w.o.Clock.Now())
	}
	now = w.o.Clock.Now()
	giveUp := first.Add(w.ep.RetryFor)
	if !now.Before(giveUp) {
		log.Error("webhook not delivered within retry_for; dead-lettered", zap.String("last", res.String()),
			zap.Duration("retry_for", w.ep.RetryFor))
		return w.counted(ResultDeadLettered, w.l.dead(rctx, deadLetter{event: ev.ID, streamID: id, typ: string(ev.Type),
			promise: ev.Promise, reason: fmt.Sprintf("not delivered within retry_for (%s)", w.ep.RetryFor), last: res.String(), at: now}))
	}
	// The last try is made when retry_for ends, so a receiver back just in time still gets it.
	next := now.Add(fullJitter(n, w.o.Backoff, w.o.MaxBackoff, rand.Int64N))
	if next.After(giveUp) {
		next = giveUp
	}
	// An endpoint that is down fails every event again and again; the first failure of each is
	// the news, the metric counts the rest.
	level := zap.WarnLevel
	if n > 1 {
		level = zap.InfoLevel
	}
	log.Log(level, "webhook delivery failed; will retry", zap.String("result", res.String()), zap.Time("next", next))
	return w.counted(ResultFailed, w.l.retry(rctx, id, next, res.String()))
}

// counted counts result once Redis has recorded it (err is nil), so the metric never runs
// ahead of what the ledger says.
func (w *worker) counted(result string, err error) error {
	if err == nil {
		w.m.count(w.ep.Name, result)
	}
	return err
}

// fullJitter is the wait after attempt n: uniform in (0, ceiling], the ceiling doubling from
// base with each attempt up to most. Spread out, retries of many events after an outage do
// not arrive at the endpoint together.
func fullJitter(n int, base, most time.Duration, random func(int64) int64) time.Duration {
	ceiling := base
	for i := 1; i < n && ceiling < most; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, most)
	return time.Duration(random(int64(ceiling))) + 1
}

// forgetDeadConsumers removes, once an hour, consumers that hold nothing and have not read
// for a long time: every daemon start is a new consumer, and the group would grow for ever.
func (w *worker) forgetDeadConsumers(ctx context.Context) error {
	now := w.o.Clock.Now()
	if !w.lastForgets.IsZero() && now.Sub(w.lastForgets) < time.Hour {
		return nil
	}
	w.lastForgets = now
	consumers, err := w.o.Redis.XInfoConsumers(ctx, w.l.stream, w.l.group).Result()
	if err != nil {
		return fmt.Errorf("listing the consumers of %s: %w", w.l.group, err)
	}
	forgetAfter := max(time.Hour, 10*w.claimIdle)
	for _, c := range consumers {
		// Idle is Redis' own time since the consumer last read; a live one reads every Poll.
		if c.Name != w.o.Instance && c.Pending == 0 && c.Idle > forgetAfter {
			if err := w.o.Redis.XGroupDelConsumer(ctx, w.l.stream, w.l.group, c.Name).Err(); err != nil {
				return fmt.Errorf("forgetting consumer %s of %s: %w", c.Name, w.l.group, err)
			}
		}
	}
	return nil
}

// updateLag measures the age of the oldest event the endpoint has not had: the oldest
// pending one, else the first not yet read. pending is an idle pass's summary of what is
// pending, asked with its read that found nothing new; nil, it is asked here.
func (w *worker) updateLag(ctx context.Context, pending *redis.XPendingCmd) error {
	idle := pending != nil
	var groups *redis.XInfoGroupsCmd
	if !idle {
		_, _ = w.o.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			pending, groups = p.XPending(ctx, w.l.stream, w.l.group), p.XInfoGroups(ctx, w.l.stream)
			return nil
		})
	}
	summary, err := pending.Result()
	if err != nil {
		return fmt.Errorf("measuring the webhook lag of %s: %w", w.l.stream, err)
	}
	// An idle pass with nothing pending asks nothing more: its read found nothing after the
	// group's last delivered entry, so the endpoint has had everything and the lag is 0.
	var oldest []redis.XMessage
	if summary.Count > 0 {
		if oldest, err = w.o.Redis.XRangeN(ctx, w.l.stream, summary.Lower, "+", 1).Result(); err != nil {
			return fmt.Errorf("measuring the webhook lag of %s: %w", w.l.stream, err)
		}
	} else if !idle {
		gs, err := groups.Result()
		if err != nil {
			return fmt.Errorf("measuring the webhook lag of %s: %w", w.l.stream, err)
		}
		for _, g := range gs {
			if g.Name == w.l.group {
				if oldest, err = w.o.Redis.XRangeN(ctx, w.l.stream, "("+g.LastDeliveredID, "+", 1).Result(); err != nil {
					return fmt.Errorf("measuring the webhook lag of %s: %w", w.l.stream, err)
				}
			}
		}
	}
	lag := 0.0
	if len(oldest) > 0 {
		if ev, err := queue.ParseEvent(w.queue, oldest[0]); err == nil {
			lag = max(0, w.o.Clock.Now().Sub(ev.At).Seconds())
		}
	}
	w.m.setLag(w.ep.Name, w.queue, lag)
	return nil
}
