package dialer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

const intakeConfig = `
asterisk:
  - name: pbx1
    url: http://127.0.0.1:8088/ari
    username: callbackd
    password: secret
detector:
  default_queue: reception
queues:
  - name: reception
  - name: support
    deadline:
      voicemail: 1h
      unanswered_transfer: 30m
    max_attempts: 5
agents:
  - id: anna
    endpoint: PJSIP/1003
    extension: "1003"
    queues: [support]
dialer:
  customer_dial_template: PJSIP/{number}@provider
  caller_id: {number: "+31205550100"}
`

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type intakeFixture struct {
	in      *Intake
	store   *queue.Store
	redis   *redistest.Server
	clk     *clock.Fake
	mu      sync.Mutex
	results []IntakeResult
	settled chan struct{}
}

func newIntakeFixture(t *testing.T, edit ...func(*IntakeOptions)) *intakeFixture {
	t.Helper()
	cfg, err := config.Parse([]byte(intakeConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	srv := redistest.Start(t, redistest.Options{})
	clk := clock.NewFake(t0)
	store, err := queue.New(srv.Client(), queue.Options{Clock: clk, Queues: []string{"reception", "support"}})
	if err != nil {
		t.Fatalf("queue.New: %v", err)
	}
	f := &intakeFixture{store: store, redis: srv, clk: clk, settled: make(chan struct{}, 100)}
	opts := IntakeOptions{Policy: PolicyFrom(cfg), Store: store, Asked: queue.NewAsked(srv.Client(), ""), Clock: clk,
		Retry: time.Second, RetryMax: 4 * time.Second,
		OnResult: func(r IntakeResult) {
			f.mu.Lock()
			f.results = append(f.results, r)
			f.mu.Unlock()
			f.settled <- struct{}{}
		}}
	for _, e := range edit {
		e(&opts)
	}
	f.in, err = NewIntake(opts)
	if err != nil {
		t.Fatalf("NewIntake: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.in.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// next waits for the next settled request; the timeout only guards against a hang.
func (f *intakeFixture) next(t *testing.T) IntakeResult {
	t.Helper()
	select {
	case <-f.settled:
	case <-time.After(20 * time.Second):
		t.Fatal("intake settled nothing")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.results[len(f.results)-1]
}

// voicemailFor is the request of one call of number: each number its own call (linkedid).
func voicemailFor(number, target string) detect.Request {
	lid := "1700000000." + strings.TrimPrefix(number, "+")
	return detect.Request{AsteriskID: "pbx", LinkedID: lid, Number: number, Reason: queue.ReasonVoicemail,
		Target: target, Channel: lid}
}

func TestIntakeMakesPromisesInTheTargetsQueue(t *testing.T) {
	cases := []struct {
		name         string
		req          detect.Request
		wantQueue    string
		wantDeadline time.Duration
		wantAttempts int
	}{
		{"voicemail for an agent's mailbox goes to the agent's queue", voicemailFor("+31201234502", "1003"), "support", time.Hour, 5},
		{"unanswered transfer to an agent uses the queue's deadline for that reason",
			detect.Request{Number: "+31201234501", Reason: queue.ReasonUnansweredTransfer, Target: "1003"}, "support", 30 * time.Minute, 5},
		{"a target nobody owns goes to the default queue with its defaults", voicemailFor("+31201234504", "1009"), "reception", 4 * time.Hour, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newIntakeFixture(t)
			f.in.Request(tc.req)
			got := f.next(t)
			if got.Err != nil {
				t.Fatalf("refused: %v", got.Err)
			}
			job, err := f.store.Get(context.Background(), got.Job.Ref())
			if err != nil {
				t.Fatalf("the promise is not in the store: %v", err)
			}
			if job.Queue != tc.wantQueue || !job.Deadline.Equal(t0.Add(tc.wantDeadline)) || job.MaxAttempts != tc.wantAttempts {
				t.Errorf("promise in %s due %v with %d attempts; want %s due %v with %d", job.Queue, job.Deadline,
					job.MaxAttempts, tc.wantQueue, t0.Add(tc.wantDeadline), tc.wantAttempts)
			}
			if job.Number != tc.req.Number || job.Target != tc.req.Target || job.Reason() != tc.req.Reason {
				t.Errorf("promise %s/%s/%s; want %s/%s/%s", job.Number, job.Target, job.Reason(), tc.req.Number, tc.req.Target, tc.req.Reason)
			}
		})
	}
}

func TestIntakeMergesASecondRequestForTheSameCustomer(t *testing.T) {
	f := newIntakeFixture(t)
	f.in.Request(voicemailFor("+31201234502", "1003"))
	first := f.next(t)
	f.in.Request(detect.Request{Number: "+31201234502", Reason: queue.ReasonUnansweredTransfer, Target: "1003"})
	second := f.next(t)
	if !second.Merged || second.Job.ID != first.Job.ID {
		t.Fatalf("second request: merged=%v into %s; want merged into %s", second.Merged, second.Job.ID, first.Job.ID)
	}
	if !second.Job.Deadline.Equal(t0.Add(30 * time.Minute)) {
		t.Errorf("merged deadline %v; want the earlier %v", second.Job.Deadline, t0.Add(30*time.Minute))
	}
}

func TestIntakeRefusesABadNumberAndWritesNothing(t *testing.T) {
	f := newIntakeFixture(t)
	f.in.Request(voicemailFor("not-a-number", "1003"))
	got := f.next(t)
	if !errors.Is(got.Err, queue.ErrInvalid) {
		t.Fatalf("bad number: error %v; want one wrapping queue.ErrInvalid", got.Err)
	}
	if !strings.Contains(got.Err.Error(), "number") {
		t.Errorf("error %q does not say the number is the problem", got.Err)
	}
	if n := f.redis.Client().DBSize(context.Background()).Val(); n != 0 {
		t.Errorf("a refused request wrote %d keys", n)
	}
	// The result is reported before the backlog drops the request: wait for the drop, which a
	// request retried for ever would never see.
	for guard := time.Now().Add(5 * time.Second); f.in.Pending() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(guard) {
			t.Fatal("a refused request stays in the backlog")
		}
	}
}

func TestIntakeResolvesWhenTheCustomerReachesTheTarget(t *testing.T) {
	f := newIntakeFixture(t)
	f.in.Request(voicemailFor("+31201234502", "1003"))
	made := f.next(t)
	f.in.Reached(detect.Reach{Number: "+31201234502", Target: "1003", LinkedID: "1700000100.7"})
	got := f.next(t)
	if got.Resolution == nil || got.Job.ID != made.Job.ID {
		t.Fatalf("resolution settled %+v; want promise %s resolved", got, made.Job.ID)
	}
	job, err := f.store.Get(context.Background(), made.Job.Ref())
	if err != nil || job.State != queue.StateResolved {
		t.Errorf("promise is %s (%v); want resolved", job.State, err)
	}
}

func TestIntakeKeepsRequestsWhileRedisIsDown(t *testing.T) {
	f := newIntakeFixture(t)
	f.redis.Stop()
	f.in.Request(voicemailFor("+31201234502", "1003"))
	// Let the first attempt fail, then bring Redis back and let the backoff pass.
	for i := 0; i < 50 && f.clk.Waiters() == 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if f.in.Pending() != 1 {
		t.Fatalf("request not kept while Redis is down: %d pending", f.in.Pending())
	}
	f.redis.Restart()
	for {
		select {
		case <-f.settled:
			f.mu.Lock()
			got := f.results[len(f.results)-1]
			f.mu.Unlock()
			if got.Err != nil {
				t.Fatalf("request refused after Redis came back: %v", got.Err)
			}
			if got.Job.Queue != "support" {
				t.Errorf("stored in %s; want support", got.Job.Queue)
			}
			return
		case <-time.After(10 * time.Millisecond):
			f.clk.Advance(time.Second)
		}
	}
}

func TestIntakeLogsNumbersMaskedUnlessTold(t *testing.T) {
	for _, tc := range []struct {
		name string
		mask func(string) string
		want string
	}{
		{"default: masked", nil, "+31*******01"},
		{"log.mask_numbers: false", func(n string) string { return n }, "+31201234501"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			f := newIntakeFixture(t, func(o *IntakeOptions) { o.Logger, o.Mask = zap.New(core), tc.mask })
			f.in.Request(voicemailFor("+31201234501", "1003"))
			f.next(t)
			var numbers []string
			for _, e := range logs.All() {
				if n, ok := e.ContextMap()["number"]; ok {
					numbers = append(numbers, n.(string))
				}
			}
			if len(numbers) == 0 || numbers[0] != tc.want {
				t.Errorf("logged numbers %q, want %q", numbers, tc.want)
			}
		})
	}
}
