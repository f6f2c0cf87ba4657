package dialer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// resolveConfig is the intake tests' configuration with two more agents and a support team
// where whoever answers settles the matter (queues[].resolve: queue); reception resolves only
// when the customer reaches the person the promise is about.
var resolveConfig = strings.NewReplacer(
	"    max_attempts: 5\n", "    max_attempts: 5\n    resolve: queue\n",
	"agents:\n", "agents:\n  - {id: ria, endpoint: PJSIP/1001, extension: \"1001\", queues: [reception]}\n"+
		"  - {id: bob, endpoint: PJSIP/1002, extension: \"1002\", queues: [support]}\n",
).Replace(intakeConfig)

// resolveRig is one daemon's intake on a shared Redis: a second rig on the same server is the
// daemon after a restart.
type resolveRig struct {
	in      *Intake
	store   *queue.Store
	results chan IntakeResult
}

func newResolveRig(t *testing.T, srv *redistest.Server, clk clock.Clock) *resolveRig {
	t.Helper()
	cfg, err := config.Parse([]byte(resolveConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if q, _ := PolicyFrom(cfg).Queue("support"); !q.ResolveByQueue {
		t.Fatal("resolve: queue did not reach the policy")
	}
	store, err := queue.New(srv.Client(), queue.Options{Clock: clk, Queues: []string{"reception", "support"}})
	if err != nil {
		t.Fatal(err)
	}
	r := &resolveRig{store: store, results: make(chan IntakeResult, 100)}
	r.in, err = NewIntake(IntakeOptions{Policy: PolicyFrom(cfg), Store: store, Asked: queue.NewAsked(srv.Client(), ""),
		Clock: clk, OnResult: func(res IntakeResult) { r.results <- res }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.in.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *resolveRig) next(t *testing.T) IntakeResult {
	t.Helper()
	select {
	case res := <-r.results:
		return res
	case <-time.After(20 * time.Second):
		t.Fatal("intake settled nothing")
		return IntakeResult{}
	}
}

// request makes a promise and returns it.
func (r *resolveRig) request(t *testing.T, number, target string) queue.Job {
	t.Helper()
	r.in.Request(detect.Request{Number: number, Reason: queue.ReasonUnansweredTransfer, Target: target, LinkedID: "first"})
	res := r.next(t)
	if res.Err != nil || res.Resolution != nil {
		t.Fatalf("promise for %s → %s: %+v", number, target, res)
	}
	return res.Job
}

// reach hands the intake a reach and returns the promise it resolved, if any. A marker request
// behind it in the backlog (which is stored in order) says the reach has been handled.
func (r *resolveRig) reach(t *testing.T, number, target string) *queue.Job {
	t.Helper()
	r.in.Reached(detect.Reach{Number: number, Target: target, LinkedID: "again"})
	r.in.Request(detect.Request{Number: "+31201239999", Reason: queue.ReasonVoicemail, Target: "1009", LinkedID: "marker"})
	var resolved *queue.Job
	for {
		res := r.next(t)
		if res.Request.LinkedID == "marker" {
			return resolved
		}
		if res.Resolution != nil {
			if resolved != nil {
				t.Fatalf("one reach resolved two promises: %s and %s", resolved.ID, res.Job.ID)
			}
			job := res.Job
			resolved = &job
		}
	}
}

func TestCustomersOwnCallResolvesTheirPromise(t *testing.T) {
	const customer, stranger = "+31201234501", "+31201234577"
	cases := []struct {
		name    string
		target  string // what the promise is about
		reached string // whom the customer's next call reached
		number  string // who made that call ("": the customer)
		want    bool
	}{
		{"reaching the target resolves (resolve: target)", "1004", "1004", "", true},
		{"reaching a colleague does not, in a target queue", "1004", "1001", "", false},
		{"reaching the target resolves (resolve: queue)", "1003", "1003", "", true},
		{"reaching anyone serving the queue resolves (resolve: queue)", "1003", "1002", "", true},
		{"reaching someone of another queue does not", "1003", "1001", "", false},
		{"reaching an extension nobody serves does not", "1003", "1005", "", false},
		{"another customer reaching the target resolves nothing of ours", "1003", "1003", stranger, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			rig := newResolveRig(t, srv, clock.NewFake(t0))
			made := rig.request(t, customer, tc.target)
			number := tc.number
			if number == "" {
				number = customer
			}
			got := rig.reach(t, number, tc.reached)
			if (got != nil) != tc.want {
				t.Fatalf("resolved %v, want %v", got, tc.want)
			}
			job, err := rig.store.Get(context.Background(), made.Ref())
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]queue.State{true: queue.StateResolved, false: queue.StatePending}[tc.want]; job.State != want {
				t.Errorf("promise %s, want %s", job.State, want)
			}
			if tc.want && got.ID != made.ID {
				t.Errorf("resolved %s, want the customer's promise %s", got.ID, made.ID)
			}
		})
	}
}

func TestResolveSurvivesARestartAndHappensOnce(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	clk := clock.NewFake(t0)
	before := newResolveRig(t, srv, clk)
	made := before.request(t, "+31201234501", "1004")
	// The daemon restarts: a new intake with nothing in memory, on the same Redis.
	after := newResolveRig(t, srv, clk)
	steps := []struct {
		name string
		rig  *resolveRig
		want string // the promise resolved, "" for none
	}{
		{"the restarted daemon resolves what the old one promised", after, made.ID},
		{"a second reach finds nothing left to resolve", after, ""},
		{"nor does the old daemon, seeing the same call", before, ""},
	}
	for _, st := range steps {
		got := ""
		if j := st.rig.reach(t, "+31201234501", "1004"); j != nil {
			got = j.ID
		}
		if got != st.want {
			t.Errorf("%s: resolved %q, want %q", st.name, got, st.want)
		}
	}
	keys, _ := srv.Client().Keys(context.Background(), "callbackd:{asked:+31201234501}").Result()
	if n, _ := srv.Client().HLen(context.Background(), "callbackd:{asked:+31201234501}").Result(); n != 0 {
		t.Errorf("the resolved promise is still remembered (%v, %d entries)", keys, n)
	}
}

func TestReachOfAPromiseAlreadyOverResolvesNothingAndForgetsIt(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	clk := clock.NewFake(t0)
	rig := newResolveRig(t, srv, clk)
	made := rig.request(t, "+31201234501", "1004")
	if _, err := rig.store.Cancel(context.Background(), made.Ref(), "called by hand"); err != nil {
		t.Fatal(err)
	}
	if j := rig.reach(t, "+31201234501", "1004"); j != nil {
		t.Fatalf("a cancelled promise was resolved: %+v", j)
	}
	if n := srv.Client().HLen(context.Background(), "callbackd:{asked:+31201234501}").Val(); n != 0 {
		t.Errorf("a promise that is over is still remembered: %d entries", n)
	}
	// Past the memory's time (a day after the deadline) a reach resolves nothing either.
	late := rig.request(t, "+31201234502", "1004")
	clk.Set(late.Deadline.Add(askedBeyondDeadline + time.Minute))
	if j := rig.reach(t, "+31201234502", "1004"); j != nil {
		t.Errorf("resolved %s %s after the memory ran out", j.ID, fmt.Sprint(j.State))
	}
}
