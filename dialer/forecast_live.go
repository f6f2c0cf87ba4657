package dialer

import (
	"context"
	"fmt"
	"time"

	"github.com/callbackd/callbackd/queue"
)

// ScheduleReader is what the forecast reads from the promise store.
type ScheduleReader interface {
	Schedule(ctx context.Context, queueName string, limit int) ([]queue.Due, int, error)
}

// Forecaster builds the forecast of a queue from the store, the pool and the policy: the one
// place metrics, the quote and the intake ask when promises will be kept.
type Forecaster struct {
	policy Policy
	store  ScheduleReader
	pool   *Pool
	handle func(queueName string) time.Duration
}

// NewForecaster returns a forecaster; handle is the measured callback length per queue
// (Dispatcher.HandleTimeFor), nil for the initial guess.
func NewForecaster(p Policy, store ScheduleReader, pool *Pool, handle func(string) time.Duration) *Forecaster {
	if handle == nil {
		handle = func(string) time.Duration { return initialHandle }
	}
	return &Forecaster{policy: p, store: store, pool: pool, handle: handle}
}

// Input is the queue's situation at now: its pending promises (the most urgent scheduleLimit
// due and as many held), its agents and when each can next take a callback.
func (f *Forecaster) Input(ctx context.Context, queueName string, now time.Time) (ForecastInput, error) {
	q, ok := f.policy.Queue(queueName)
	if !ok {
		return ForecastInput{}, fmt.Errorf("forecasting queue %s: %w", queueName, queue.ErrUnknownQueue)
	}
	list, _, err := f.store.Schedule(ctx, queueName, scheduleLimit)
	if err != nil {
		return ForecastInput{}, fmt.Errorf("forecasting queue %s: %w", queueName, err)
	}
	in := ForecastInput{Now: now, Hours: q.Hours, Handle: f.handle(queueName)}
	for _, d := range list {
		in.Promises = append(in.Promises, ForecastPromise{ID: d.ID, Deadline: d.Deadline, NotBefore: d.NotBefore,
			// A promise made on a wall clock has no hold-until of its own: the forecast then
			// does not hold it, which errs towards letting anyone take it.
			Owner: d.Owner, HoldUntil: d.HoldUntil})
	}
	if f.pool != nil {
		in.Agents = f.pool.forecastAgents(queueName, now, in.Handle)
	}
	return in, nil
}

// Queue is the forecast of one queue at now, earliest deadline first.
func (f *Forecaster) Queue(ctx context.Context, queueName string, now time.Time) ([]Prediction, error) {
	in, err := f.Input(ctx, queueName, now)
	if err != nil {
		return nil, err
	}
	return Forecast(in), nil
}

// CountAtRisk is how many predictions miss their deadline.
func CountAtRisk(preds []Prediction) int {
	n := 0
	for _, p := range preds {
		if p.AtRisk() {
			n++
		}
	}
	return n
}

// forecastAgents lists the agents serving queueName as the forecast sees them: a free agent
// now; a calling one after about one handle time from the start of its call; wrap-up and
// cooldown when they end; a phone busy with another call after about one handle time. An
// agent on shift but logged out, paused or offline is counted from the end of this shift (the
// rota says they are back for the next); one without shifts who is absent is not counted.
// An agent off shift now counts from their next shift, whatever their phone says.
func (p *Pool) forecastAgents(queueName string, now time.Time, handle time.Duration) []ForecastAgent {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ForecastAgent
	for _, a := range p.agents {
		if !a.cfg.Serves(queueName) {
			continue
		}
		fa := ForecastAgent{ID: a.cfg.ID, Extension: a.cfg.Extension, Shift: a.cfg.Shift, FreeAt: now}
		switch a.state(now) {
		case AgentFree, AgentOffShift:
		case AgentCalling:
			fa.FreeAt = laterOf(now, a.callStart.Add(handle))
		case AgentWrapUp:
			fa.FreeAt = a.wrapUntil
		case AgentCooldown:
			fa.FreeAt = a.coolUntil
		case AgentBusy:
			fa.FreeAt = now.Add(handle)
		default: // offline, logged out, paused: absent for the rest of this shift
			if a.cfg.Shift == nil {
				continue
			}
			fa.FreeAt = a.cfg.Shift.NextClosing(now)
			if fa.FreeAt.IsZero() {
				continue
			}
		}
		out = append(out, fa)
	}
	return out
}
