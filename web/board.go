package web

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/queue"
)

// board is everything the page shows at one moment.
type board struct {
	Now       time.Time
	Who       string
	CanCancel bool
	Form      string // the session's form token
	Window    string // the kept ratio's window, in words
	Queues    []queueRow
	Promises  []promiseRow
	Agents    []agentRow
	// Problems are the parts that could not be read; the rest is shown all the same.
	Problems []string
	// Unread is set when some queue's open promises could not be read: an empty list then
	// does not mean there are none.
	Unread bool
	Notice string
	// Cursor is the event stream's end just before the board was read: the page follows the
	// stream from there, so nothing that happens while it loads is missed.
	Cursor string
}

type queueRow struct {
	Name string
	// Open counts the queue's open promises; Shown those of them on the page (the most urgent
	// Options.Limit), less than Open in a long queue.
	Open, Shown int64
	AtRisk      int
	// Kept is the kept ratio in words ("94 %"), "none finished" while nothing finished in
	// the window; Finished counts those it is taken over.
	Kept     string
	Finished int64
}

type promiseRow struct {
	Queue, ID, Number, Reason, State, Agent string
	Deadline                                time.Time
	Left                                    string
	Overdue                                 bool
	// Slack is the predicted slack in words; "" when the promise is not planned (it is being
	// called, or beyond what the forecast reads).
	Slack    string
	AtRisk   bool
	Attempts string
}

type agentRow struct {
	ID, Name, State, Presence, Queues, Until string
	OnShift                                  bool
}

// openStates are the states a promise shown on the page is in.
var openStates = []queue.State{queue.StatePending, queue.StateDialing, queue.StateConnected}

// read gathers the board for s at the store's now. A queue that cannot be read is named in
// Problems and left out; the others are still shown.
func (h *Handler) read(ctx context.Context, s session) board {
	now := h.o.Clock.Now()
	b := board{Now: now, Who: s.Name, CanCancel: s.Write, Form: h.formToken(s), Window: windowWords(h.o.KeptWindow)}
	mask := h.o.Mask
	if s.Numbers {
		mask = func(n string) string { return n }
	}
	if cur, err := h.o.Events.EventsNow(ctx); err != nil {
		b.problem(h, "the event stream (the page does not update by itself)", err)
	} else {
		b.Cursor = cur.String()
	}
	for _, q := range h.o.Promises.Queues() {
		jobs, err := h.o.Promises.List(ctx, q, queue.ListOptions{States: openStates, Limit: h.o.Limit})
		// A broken record is left out (and named in the log), and the rest of the queue is
		// shown; a list that could not be read at all says so rather than that it is empty.
		if err != nil && len(jobs) > 0 {
			b.problem(h, "some open promises of queue "+q+" (left out)", err)
		} else if err != nil {
			b.problem(h, "the open promises of queue "+q, err)
			b.Unread = true
			continue
		}
		preds, err := h.o.Forecast.Queue(ctx, q, now)
		if err != nil {
			b.problem(h, "the forecast of queue "+q, err)
		}
		byID := make(map[string]dialer.Prediction, len(preds))
		for _, p := range preds {
			byID[p.ID] = p
		}
		row := queueRow{Name: q, Open: int64(len(jobs)), Shown: int64(len(jobs)), AtRisk: dialer.CountAtRisk(preds), Kept: "none finished"}
		if st, err := h.o.Promises.Stats(ctx, q); err != nil {
			b.problem(h, "the counts of queue "+q, err)
		} else {
			row.Open = max(row.Shown, st.Ready+st.Delayed+st.Leased)
		}
		if out, err := h.o.Promises.Outcomes(ctx, q, h.o.KeptWindow); err != nil {
			b.problem(h, "the outcomes of queue "+q, err)
			row.Kept = "unknown"
		} else if r := dialer.KeptRatio(out); !math.IsNaN(r) {
			row.Kept = fmt.Sprintf("%.0f %%", 100*r)
			row.Finished = out[queue.StateKept] + out[queue.StateLate] + out[queue.StateUnreachable] + out[queue.StateExpired]
		}
		b.Queues = append(b.Queues, row)
		for _, j := range jobs {
			b.Promises = append(b.Promises, promiseFor(j, byID, now, mask))
		}
	}
	slices.SortStableFunc(b.Promises, func(x, y promiseRow) int {
		return cmp.Or(x.Deadline.Compare(y.Deadline), cmp.Compare(x.Queue, y.Queue), cmp.Compare(x.ID, y.ID))
	})
	for _, a := range h.o.Agents.Agents() {
		row := agentRow{ID: a.ID, Name: a.Name, State: label(a.State), Presence: label(a.Presence),
			Queues: strings.Join(a.Queues, ", "), OnShift: a.OnShift}
		if !a.Until.IsZero() && a.Until.After(now) {
			row.Until = words(a.Until.Sub(now))
		}
		b.Agents = append(b.Agents, row)
	}
	return b
}

func (b *board) problem(h *Handler, what string, err error) {
	h.o.Logger.Warn("supervisor page: could not read "+what, zap.Error(err))
	b.Problems = append(b.Problems, "Could not read "+what+".")
}

func promiseFor(j queue.Job, preds map[string]dialer.Prediction, now time.Time, mask func(string) string) promiseRow {
	r := promiseRow{Queue: j.Queue, ID: j.ID, Number: mask(j.Number), Reason: label(string(j.Reason())),
		State: label(string(j.State)), Deadline: j.Deadline, Attempts: fmt.Sprintf("%d of %d", j.Attempts, j.MaxAttempts)}
	if left := j.Deadline.Sub(now); left >= 0 {
		r.Left = words(left)
	} else {
		r.Left, r.Overdue = "overdue by "+words(-left), true
	}
	if j.State != queue.StatePending {
		r.Agent, r.Slack = agentOf(j.Lease.Worker), "being called back"
		return r
	}
	p, ok := preds[j.ID]
	if !ok {
		return r
	}
	r.AtRisk = p.AtRisk()
	switch slack, ok := p.Slack(); {
	case !ok:
		r.Slack = "no agent in sight"
	case slack >= 0:
		r.Slack = words(slack) + " to spare"
	default:
		r.Slack = words(-slack) + " late"
	}
	return r
}

// words says a duration the way a supervisor reads it: the two largest units, rounded down.
func words(d time.Duration) string {
	d = d.Truncate(time.Second)
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	switch {
	case h >= 24:
		return fmt.Sprintf("%dd %dh", h/24, h%24)
	case h > 0:
		return fmt.Sprintf("%dh %02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %02ds", m, s)
	default:
		return fmt.Sprintf("%ds", s)
	}
}

// windowWords says the kept ratio's window: "24 hours", "90 minutes".
func windowWords(d time.Duration) string {
	switch {
	case d == time.Hour:
		return "hour"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	default:
		return words(d)
	}
}

// label turns a state's name into words: "wrap_up" → "wrap up".
func label(name string) string { return strings.ReplaceAll(name, "_", " ") }
