package demo

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
	"github.com/callbackd/callbackd/queue/promisetable"
)

// timeline prints demo lines stamped with simulated time since the start.
type timeline struct {
	mu    sync.Mutex
	w     io.Writer
	clk   clock.Clock
	start time.Time
}

// lockedWriter serialises writes to the demo's output, which several goroutines share.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (t *timeline) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.clk.Now().Sub(t.start).Round(time.Second)
	fmt.Fprintf(t.w, "[%02d:%02d] %s\n", int(d.Minutes()), int(d.Seconds())%60, fmt.Sprintf(format, args...))
}

func printResult(tl *timeline, r dialer.IntakeResult) {
	switch {
	case r.Resolution != nil:
		tl.printf("promise %s RESOLVED: %s reached %s themselves; no callback needed", short(r.Job.ID), phone.Mask(r.Resolution.Number), r.Resolution.Target)
	case r.Err != nil:
		tl.printf("request REFUSED for %s (%s → %s): %v", phone.Mask(r.Request.Number), r.Request.Reason, r.Request.Target, r.Err)
	case r.Merged:
		tl.printf("promise %s MERGED: %s %s → %s again; still one promise, due %s", short(r.Job.ID), phone.Mask(r.Request.Number),
			r.Request.Reason, r.Request.Target, r.Job.Deadline.In(tl.clk.Now().Location()).Format("15:04"))
	default:
		tl.printf("promise %s MADE: call back %s (%s → %s) in queue %s before %s; queue by %s", short(r.Job.ID), phone.Mask(r.Request.Number),
			r.Request.Reason, r.Request.Target, r.Job.Queue, r.Job.Deadline.In(tl.clk.Now().Location()).Format("15:04"), r.Rule)
	}
}

func printProgress(tl *timeline, cfg *config.Config, p dialer.Progress) {
	who := phone.Mask(p.Job.Number)
	switch p.Step {
	case dialer.StepAgentRung:
		tl.printf("promise %s: ringing agent %s (their phone shows %s)", short(p.Job.ID), p.Agent, who)
	case dialer.StepWhisper:
		// The agent hears the number; the terminal shows it masked like everywhere else.
		whisper := strings.ReplaceAll(p.Detail, strings.TrimPrefix(p.Job.Number, "+"), strings.TrimPrefix(who, "+"))
		tl.printf("promise %s: %s answered; whisper: %s", short(p.Job.ID), p.Agent, whisper)
	case dialer.StepCustomerDialled:
		tl.printf("promise %s: dialling %s with caller id %s; %s hears ringback", short(p.Job.ID), who, cfg.Dialer.CallerID.Number, p.Agent)
	case dialer.StepCustomerAnswered:
		tl.printf("promise %s: %s answered (pressed 1 where asked); bridged with %s", short(p.Job.ID), who, p.Agent)
	case dialer.StepTakenAway:
		tl.printf("promise %s: taken away from %s's callback (%s)", short(p.Job.ID), p.Agent, p.Detail)
	case dialer.StepSettled:
		var what string
		switch p.State {
		case queue.StateKept:
			what = "KEPT: connected before the deadline"
		case queue.StateLate:
			what = "LATE: connected after the deadline"
		case queue.StateUnreachable:
			what = fmt.Sprintf("UNREACHABLE after %d attempts", p.Job.Attempts)
		case queue.StatePending:
			what = "back in the queue (" + p.Detail + ")"
			if p.CustomerResult != "" {
				what = fmt.Sprintf("customer %s; attempt %d/%d in %s", strings.ReplaceAll(p.CustomerResult, "_", " "),
					p.Job.Attempts+1, p.Job.MaxAttempts, promisetable.Minutes(p.Job.NotBefore.Sub(p.At)))
			}
		default:
			what = string(p.State) + " (" + p.Detail + ")"
		}
		tl.printf("promise %s: %s", short(p.Job.ID), what)
	}
}

// short is the tail of a ULID: its random part tells promises apart at a glance.
func short(id string) string {
	if len(id) > 6 {
		return "…" + id[len(id)-6:]
	}
	return id
}

// tally keeps what the demo's summary counts.
type tally struct {
	mu       sync.Mutex
	made     int
	merged   int
	resolved int
	refused  int
	attempts map[string]int // "agent no_answer", "customer busy", ...
	// predictedKept is, per promise, whether the forecast said when it was made that it
	// would be kept.
	predictedKept map[string]bool
}

func (r *tally) predicted(id string, kept bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.predictedKept == nil {
		r.predictedKept = map[string]bool{}
	}
	r.predictedKept[id] = kept
}

func (r *tally) intake(ir dialer.IntakeResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case ir.Resolution != nil:
		r.resolved++
	case ir.Err != nil:
		r.refused++
	case ir.Merged:
		r.merged++
	default:
		r.made++
	}
}

func (r *tally) progress(p dialer.Progress) {
	if p.Step != dialer.StepSettled {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.attempts == nil {
		r.attempts = map[string]int{}
	}
	if p.AgentResult != "" {
		r.attempts["agent "+p.AgentResult]++
	}
	if p.CustomerResult != "" {
		r.attempts["customer "+p.CustomerResult]++
	}
}

func printSummary(w io.Writer, calls int, rec *tally, jobs []queue.Job) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	count := map[queue.State]int{}
	var waits []time.Duration
	for _, j := range jobs {
		count[j.State]++
		if !j.ConnectedAt.IsZero() {
			waits = append(waits, j.ConnectedAt.Sub(j.Created))
		}
	}
	fmt.Fprintf(w, "\n%d customer calls: %d promises made, %d repeat request(s) merged, %d resolved by the customer, %d refused.\n",
		calls, rec.made, rec.merged, rec.resolved, rec.refused)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPROMISES\tKEPT\tLATE\tUNREACHABLE\tKEPT RATIO\tMEDIAN TIME TO CALLBACK")
	ratio := dialer.KeptRatio(map[queue.State]int64{queue.StateKept: int64(count[queue.StateKept]),
		queue.StateLate: int64(count[queue.StateLate]), queue.StateUnreachable: int64(count[queue.StateUnreachable]),
		queue.StateExpired: int64(count[queue.StateExpired])})
	ratioText := "-"
	if ratio == ratio { // not NaN
		ratioText = fmt.Sprintf("%.0f %%", ratio*100)
	}
	median := "-"
	if len(waits) > 0 {
		sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
		median = waits[len(waits)/2].Round(time.Second).String()
	}
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\n", len(jobs), count[queue.StateKept], count[queue.StateLate],
		count[queue.StateUnreachable], ratioText, median)
	_ = tw.Flush()
	var keys []string
	for k := range rec.attempts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, rec.attempts[k]))
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "\nCall attempts: %s.\n", strings.Join(parts, ", "))
	}
}
