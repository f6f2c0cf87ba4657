package dialer

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// RiskWatch turns the forecast into news: each promise the forecast says will miss its
// deadline is announced once on the event stream (queue.EventAtRisk), so a CRM or a supervisor
// hears of it while there is still time to act, not from the kept ratio afterwards. The
// at-risk gauge says how many; this says which.
type RiskWatch struct {
	forecast func(ctx context.Context, queueName string, now time.Time) ([]Prediction, error)
	emitter  interface {
		Emit(ctx context.Context, ref queue.Ref, t queue.EventType, data map[string]string) error
	}
	queues []string
	every  time.Duration
	clk    clock.Clock
	log    *zap.Logger
	// told remembers, per queue, the promises this daemon announced, so each look costs a
	// write only for a promise newly at risk. The store also announces each promise once
	// (emit.lua), so several daemons and a restart do not repeat the news.
	told map[string]map[string]bool
}

// RiskWatchOptions wire a RiskWatch.
type RiskWatchOptions struct {
	Forecaster *Forecaster
	Store      interface {
		Emit(ctx context.Context, ref queue.Ref, t queue.EventType, data map[string]string) error
	}
	Queues []string
	// Every is how often the forecast is looked at; zero means every 30 s.
	Every  time.Duration
	Clock  clock.Clock
	Logger *zap.Logger
}

// NewRiskWatch returns a watch over o.Queues.
func NewRiskWatch(o RiskWatchOptions) *RiskWatch {
	w := &RiskWatch{forecast: o.Forecaster.Queue, emitter: o.Store, queues: o.Queues, every: o.Every,
		clk: o.Clock, log: o.Logger, told: map[string]map[string]bool{}}
	if w.every <= 0 {
		w.every = 30 * time.Second
	}
	if w.clk == nil {
		w.clk = clock.Real{}
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	return w
}

// Run looks at every queue's forecast until ctx ends.
func (w *RiskWatch) Run(ctx context.Context) error {
	for {
		for _, q := range w.queues {
			if err := w.Look(ctx, q); err != nil && ctx.Err() == nil {
				w.log.Warn("at-risk look failed", zap.String("queue", q), zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.clk.After(w.every):
		}
	}
}

// Look announces queue's promises that became at risk since the last look.
func (w *RiskWatch) Look(ctx context.Context, queueName string) error {
	now := w.clk.Now()
	preds, err := w.forecast(ctx, queueName, now)
	if err != nil {
		return fmt.Errorf("forecasting queue %s: %w", queueName, err)
	}
	told := w.told[queueName]
	next := map[string]bool{}
	for _, p := range preds {
		if !p.AtRisk() {
			continue
		}
		next[p.ID] = true
		if told[p.ID] {
			continue
		}
		data := map[string]string{"deadline": fmt.Sprint(p.Deadline.UnixMilli())}
		if !p.Connect.IsZero() {
			data["predicted_connect"] = fmt.Sprint(p.Connect.UnixMilli())
		}
		if err := w.emitter.Emit(ctx, queue.Ref{Queue: queueName, ID: p.ID}, queue.EventAtRisk, data); err != nil {
			// Left out of next, so the next look tries again.
			delete(next, p.ID)
			w.log.Warn("at-risk event not written", zap.String("promise", p.ID), zap.Error(err))
		}
	}
	// Promises no longer at risk (or gone) are forgotten, which keeps the map as small as the
	// at-risk set; the store still announces each promise only once.
	w.told[queueName] = next
	return nil
}
