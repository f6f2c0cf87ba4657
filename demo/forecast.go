package demo

import (
	"context"
	"fmt"
	"io"

	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/queue"
)

// predict asks the daemon's forecast, right after a promise was made, when it will be
// connected: the demo prints that beside what then happens, so the forecast can be judged.
// The forecast looks at promises waiting for an agent; one a free agent claimed before the
// forecast was read is being called back already, so it is predicted connected now.
func predict(ctx context.Context, fc *dialer.Forecaster, promises *queue.Store, tl *timeline, r dialer.IntakeResult) (dialer.Prediction, bool) {
	if fc == nil || r.Err != nil || r.Merged || r.Resolution != nil {
		return dialer.Prediction{}, false
	}
	preds, err := fc.Queue(ctx, r.Job.Queue, tl.clk.Now())
	if err != nil {
		return dialer.Prediction{}, false
	}
	for _, p := range preds {
		if p.ID == r.Job.ID {
			return p, true
		}
	}
	if promises == nil {
		return dialer.Prediction{}, false
	}
	j, err := promises.Get(ctx, r.Job.Ref())
	if err != nil || j.State == queue.StatePending {
		return dialer.Prediction{}, false
	}
	return dialer.Prediction{ForecastPromise: dialer.ForecastPromise{ID: j.ID, Deadline: j.Deadline}, Connect: tl.clk.Now(),
		Agent: j.Lease.Worker}, true
}

func printPrediction(tl *timeline, r dialer.IntakeResult, p dialer.Prediction) {
	loc := tl.clk.Now().Location()
	// Minutes, unless connect and deadline fall in the same one: "about 10:10, after the
	// deadline 10:10" would read as a contradiction.
	layout := "15:04"
	if p.Connect.In(loc).Format(layout) == r.Job.Deadline.In(loc).Format(layout) {
		layout = "15:04:05"
	}
	due := r.Job.Deadline.In(loc).Format(layout)
	var said string
	switch {
	case p.Connect.IsZero():
		said = "no agent can take it in time"
	case p.AtRisk() && p.Connect.In(loc).Format(layout) == due:
		// The demo's reception deadline is two handle times, so a second promise waiting
		// behind a busy agent lands on it to the second.
		said = fmt.Sprintf("connected about %s, just after the deadline %s", p.Connect.In(loc).Format(layout), due)
	case p.AtRisk():
		said = fmt.Sprintf("connected about %s, after the deadline %s", p.Connect.In(loc).Format(layout), due)
	default:
		said = fmt.Sprintf("connected about %s, before the deadline %s", p.Connect.In(loc).Format(layout), due)
	}
	if r.Job.AtRiskFromStart {
		tl.printf("promise %s: AT RISK FROM THE START: the staff cannot keep the policy's deadline; forecast: %s", short(r.Job.ID), said)
		return
	}
	tl.printf("promise %s: forecast: %s", short(r.Job.ID), said)
}

// printForecastScore compares the forecasts made when each promise was made with the outcomes.
func printForecastScore(w io.Writer, rec *tally, kept int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	predictedKept := 0
	for _, ok := range rec.predictedKept {
		if ok {
			predictedKept++
		}
	}
	fmt.Fprintf(w, "Forecast when each promise was made: %d of %d kept; measured: %d kept.\n", predictedKept, len(rec.predictedKept), kept)
}
