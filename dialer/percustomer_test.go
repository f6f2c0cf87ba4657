package dialer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/queue"
)

// A customer who misses people in two queues is called back once (issue 15): the second
// request joins the open promise in the first queue, with the earlier deadline and both
// reasons and targets — unless the second queue keeps its promises apart (promise_per: queue).
func TestOnePromisePerCustomerAcrossQueues(t *testing.T) {
	const number = "+31201234590"
	for _, tc := range []struct {
		name         string
		supportApart bool
		wantPromises int
	}{
		{"by default, one promise", false, 1},
		{"support keeps its own", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newIntakeFixture(t, func(o *IntakeOptions) {
				for i := range o.Policy.Queues {
					if o.Policy.Queues[i].Name == "support" {
						o.Policy.Queues[i].PerQueue = tc.supportApart
					}
				}
			})
			first := voicemailFor(number, "1001") // reception's (the default queue)
			f.in.Request(first)
			a := f.next(t)
			if a.Err != nil || a.Job.Queue != "reception" {
				t.Fatalf("first request: %+v", a)
			}
			second := detect2(number, "1003", queue.ReasonUnansweredTransfer) // support's
			f.in.Request(second)
			b := f.next(t)
			if b.Err != nil {
				t.Fatalf("second request refused: %v", b.Err)
			}
			ctx := context.Background()
			var open []queue.Job
			for _, q := range f.store.Queues() {
				jobs, err := f.store.List(ctx, q, queue.ListOptions{States: []queue.State{queue.StatePending}})
				if err != nil {
					t.Fatal(err)
				}
				open = append(open, jobs...)
			}
			if len(open) != tc.wantPromises {
				t.Fatalf("%d open promises %+v, want %d", len(open), open, tc.wantPromises)
			}
			if tc.wantPromises != 1 {
				if b.Job.Queue != "support" || b.Merged {
					t.Errorf("second request %+v, want its own promise in support", b.Job)
				}
				return
			}
			j := open[0]
			if !b.Merged || j.Queue != "reception" || !slices.Contains(j.Reasons, queue.ReasonUnansweredTransfer) ||
				!slices.Contains(j.Targets, "1003") || !slices.Contains(j.Targets, "1001") {
				t.Errorf("the one promise %+v (merged %v), want reception's with both reasons and targets", j, b.Merged)
			}
			// support promises an unanswered transfer within 30 min, earlier than reception's
			// voicemail deadline: the earlier one stands.
			if want := t0.Add(30 * time.Minute); !j.Deadline.Equal(want) && j.Deadline.After(want) {
				t.Errorf("deadline %v, want no later than support's %v", j.Deadline, want)
			}
			if b.Rule == a.Rule {
				t.Errorf("the second request's rule %q does not say it joined another queue's promise", b.Rule)
			}
		})
	}
}

// detect2 is a request of its own call for number about target.
func detect2(number, target string, reason queue.Reason) (r detect.Request) {
	r = voicemailFor(number, target)
	r.LinkedID += ".2"
	r.Reason = reason
	return r
}
