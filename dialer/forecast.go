package dialer

import (
	"sort"
	"time"
)

// The forecast is the one answer to "when will each promise be called back?": metrics count
// the promises at risk from it, the quote searches it for an honest deadline, and a simulator
// can replay it. It plays the dispatcher forward — earliest deadline first, owner preference,
// longest-idle agent first — over the rota and the calling hours, with the measured handle
// time, and gives every promise a predicted connect time.

// ForecastPromise is one promise as the forecast plans it.
type ForecastPromise struct {
	ID        string
	Deadline  time.Time
	NotBefore time.Time // zero: due now
	// Owner is the extension of the agent the promise is held for until HoldUntil.
	Owner     string
	HoldUntil time.Time
}

// ForecastAgent is one agent on the queue's rota.
type ForecastAgent struct {
	ID, Extension string
	// Shift is when the agent works; nil: always.
	Shift Hours
	// FreeAt is when the agent can take the next callback: now when free, after the call,
	// wrap-up or cooldown in progress, after the current shift when absent from it.
	FreeAt time.Time
}

// ForecastInput is a queue's situation at Now.
type ForecastInput struct {
	Now time.Time
	// Hours are the queue's calling hours; nil: always open.
	Hours Hours
	// Handle is how long one callback takes an agent, wrap-up included.
	Handle   time.Duration
	Agents   []ForecastAgent
	Promises []ForecastPromise
}

// Prediction is a promise with its predicted connect time.
type Prediction struct {
	ForecastPromise
	// Connect is when an agent is predicted to start the callback; zero: not within the
	// forecast's horizon (nobody on the rota, calling hours never open).
	Connect time.Time
	Agent   string
}

// AtRisk reports whether the promise is predicted to be reached after its deadline.
func (p Prediction) AtRisk() bool { return p.Connect.IsZero() || p.Connect.After(p.Deadline) }

// Slack is deadline minus predicted connect; false when no connect is predicted.
func (p Prediction) Slack() (time.Duration, bool) {
	if p.Connect.IsZero() {
		return 0, false
	}
	return p.Deadline.Sub(p.Connect), true
}

// forecastHorizon bounds the plan: a promise not reached within it is at risk.
const forecastHorizon = 60 * 24 * time.Hour

type planAgent struct {
	ForecastAgent
	index int
	since time.Time // when it last became free: the dispatcher's longest-idle order
	next  time.Time // when it looks for work next
	out   bool
}

// Forecast plans the promises of in, earliest deadline first, and returns them in that order
// with their predicted connects. It is pure: the same input gives the same plan.
func Forecast(in ForecastInput) []Prediction {
	preds := make([]Prediction, len(in.Promises))
	for i, p := range in.Promises {
		if p.NotBefore.Before(in.Now) {
			p.NotBefore = in.Now
		}
		preds[i] = Prediction{ForecastPromise: p}
	}
	sort.SliceStable(preds, func(i, j int) bool {
		if !preds[i].Deadline.Equal(preds[j].Deadline) {
			return preds[i].Deadline.Before(preds[j].Deadline)
		}
		return preds[i].ID < preds[j].ID
	})
	handle := in.Handle
	if handle <= 0 {
		handle = time.Minute
	}
	agents := make([]*planAgent, len(in.Agents))
	for i, a := range in.Agents {
		free := a.FreeAt
		if free.Before(in.Now) {
			free = in.Now
		}
		agents[i] = &planAgent{ForecastAgent: a, index: i, since: free, next: free}
	}
	end := in.Now.Add(forecastHorizon)
	open := make([]int, len(preds)) // indexes of promises not yet planned, in EDF order
	for i := range open {
		open[i] = i
	}
	for len(open) > 0 {
		var a *planAgent
		for _, c := range agents {
			if c.out {
				continue
			}
			c.next = workable(in.Hours, c.Shift, c.next)
			if c.next.IsZero() || c.next.After(end) {
				c.out = true
				continue
			}
			if a == nil || c.next.Before(a.next) || c.next.Equal(a.next) && (c.since.Before(a.since) ||
				c.since.Equal(a.since) && c.index < a.index) {
				a = c
			}
		}
		if a == nil {
			break
		}
		t := a.next
		k := pickFor(a, t, preds, open, agents)
		if k >= 0 {
			preds[open[k]].Connect, preds[open[k]].Agent = t, a.ID
			open = append(open[:k], open[k+1:]...)
			a.since, a.next = t.Add(handle), t.Add(handle)
			continue
		}
		// Nothing this agent may take now: look again when a promise becomes due or a hold
		// ends, whichever is first.
		var ev time.Time
		for _, i := range open {
			for _, x := range []time.Time{preds[i].NotBefore, preds[i].HoldUntil} {
				if x.After(t) && (ev.IsZero() || x.Before(ev)) {
					ev = x
				}
			}
		}
		// An owner going off shift stops holding their promises.
		for _, b := range agents {
			if b != a && b.Shift != nil && b.Shift.Open(t) {
				if x := b.Shift.NextClosing(t); x.After(t) && (ev.IsZero() || x.Before(ev)) {
					ev = x
				}
			}
		}
		if ev.IsZero() {
			a.out = true
			continue
		}
		a.next = ev
	}
	return preds
}

// workable is the first moment from t when both the calling hours and the shift are open;
// zero when there is none.
func workable(hours, shift Hours, t time.Time) time.Time {
	for range 1000 {
		if hours != nil {
			if t = hours.NextOpening(t); t.IsZero() {
				return t
			}
		}
		if shift == nil || shift.Open(t) {
			return t
		}
		if t = shift.NextOpening(t); t.IsZero() {
			return t
		}
		if hours == nil || hours.Open(t) {
			return t
		}
	}
	return time.Time{}
}

// pickFor is the claim's rule (queue.ClaimOptions Prefer and Held): among the due promises,
// the agent's own whose hold runs first; else the earliest deadline not held for another agent
// on shift now. It returns the index into open, or -1.
func pickFor(a *planAgent, t time.Time, preds []Prediction, open []int, agents []*planAgent) int {
	first := -1
	for k, i := range open {
		p := preds[i]
		if p.NotBefore.After(t) {
			continue
		}
		holding := p.Owner != "" && t.Before(p.HoldUntil)
		if holding && p.Owner == a.Extension {
			return k
		}
		if holding && heldFor(p.Owner, a, t, agents) {
			continue
		}
		if first < 0 {
			first = k
		}
	}
	return first
}

func heldFor(owner string, a *planAgent, t time.Time, agents []*planAgent) bool {
	for _, b := range agents {
		if b != a && b.Extension == owner && (b.Shift == nil || b.Shift.Open(t)) {
			return true
		}
	}
	return false
}
