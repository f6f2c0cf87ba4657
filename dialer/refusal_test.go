package dialer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// A request is screened before anything is stored: a number dialer.allow refuses, or one over
// a rate limit, becomes no promise, writes nothing but the counters, and is counted by reason.
func TestIntakeRefusesWhatMayNotBeDialledAndWhatIsOverALimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	counters := redistest.Start(t, redistest.Options{})
	f := newIntakeFixture(t, func(o *IntakeOptions) {
		o.Metrics = NewMetrics(reg, o.Policy.QueueNames())
		o.Limiter = queue.NewRateLimits(counters.Client(), "")
		o.Policy.Limits = RateLimits{PromisesPerNumberPerDay: 2, BlockDigits: 8, PromisesPerBlockPerHour: 3}
	})
	steps := []struct {
		name, number string
		call         int           // the missed call's number: the same call seen again counts once
		want         queue.Refusal // "" when a promise is made or merged
	}{
		{"premium rate 0900 is never promised", "+31900123456", 1, queue.RefusalNotAllowed},
		{"a Belgian number is not in the default countries", "+3222123456", 2, queue.RefusalNotAllowed},
		{"first request for a number", "+31201234501", 3, ""},
		{"the same call again (another daemon watched it too): not counted again", "+31201234501", 3, ""},
		{"second call for the number (merged)", "+31201234501", 4, ""},
		{"third call for the number the same day", "+31201234501", 5, queue.RefusalRateLimited},
		{"another number of the same block", "+31201234502", 6, ""},
		{"a third number of the block: the block's limit", "+31201234503", 7, queue.RefusalRateLimited},
		{"a number of another block", "+31612345678", 8, ""},
	}
	for _, s := range steps {
		r := voicemailFor(s.number, "1003")
		r.LinkedID = fmt.Sprintf("1700000000.%d", s.call)
		f.in.Request(r)
		got := f.next(t)
		var re *RefusedError
		switch {
		case s.want == "" && got.Err != nil:
			t.Fatalf("%s: refused: %v", s.name, got.Err)
		case s.want != "" && (!errors.As(got.Err, &re) || re.Reason != s.want):
			t.Fatalf("%s: %v; want refused %s", s.name, got.Err, s.want)
		case s.want != "" && strings.Contains(got.Err.Error(), s.number[3:]):
			t.Fatalf("%s: error %q carries the number", s.name, got.Err)
		}
	}
	jobs, err := f.store.List(context.Background(), "support", queue.ListOptions{Limit: 100, States: queue.States()})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 {
		t.Errorf("%d promises stored; want 3 (one per accepted number)", len(jobs))
	}
	for reason, want := range map[queue.Refusal]float64{queue.RefusalNotAllowed: 2, queue.RefusalRateLimited: 2, queue.RefusalInvalidNumber: 0} {
		if got := counterValue(t, reg, "callbackd_requests_refused_total", "reason", string(reason)); got != want {
			t.Errorf("callbackd_requests_refused_total{reason=%q} = %v; want %v", reason, got, want)
		}
	}
}

// A promise made for a voicemail an events gap interrupted is counted apart, so an operator
// sees how many callbacks went to callers who may not have left a message; a plain voicemail
// and the gap request a second daemon repeats are not.
func TestIntakeCountsThePromisesMadeFromAnEventsGap(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newIntakeFixture(t, func(o *IntakeOptions) { o.Metrics = NewMetrics(reg, o.Policy.QueueNames()) })
	gap := voicemailFor("+31201234501", "1003")
	gap.VoicemailGap = true
	for _, r := range []detect.Request{gap, voicemailFor("+31201234502", "1003"), gap} {
		f.in.Request(r)
		if got := f.next(t); got.Err != nil {
			t.Fatalf("refused: %v", got.Err)
		}
	}
	if got := counterValue(t, reg, "callbackd_promises_from_events_gaps_total", "queue", "support"); got != 1 {
		t.Errorf("callbackd_promises_from_events_gaps_total{queue=support} = %v; want 1", got)
	}
}
