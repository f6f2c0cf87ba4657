package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
)

func TestNewRefusesBadOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no queues", Options{}, "no queues"},
		{"hash tag in queue name", Options{Queues: []string{"sales{1}"}}, "hash tag"},
		{"closing brace alone", Options{Queues: []string{"sa}les"}}, "hash tag"},
		{"empty queue name", Options{Queues: []string{""}}, "1-64 characters"},
		{"space in queue name", Options{Queues: []string{"sales team"}}, "1-64 characters"},
		{"queue listed twice", Options{Queues: []string{"a", "a"}}, "listed twice"},
		{"brace in prefix", Options{Prefix: "cb{x}", Queues: []string{"a"}}, "hash tags"},
		{"negative retention", Options{Retention: -time.Hour, Queues: []string{"a"}}, "retention"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(rdb, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v) error = %v, want one saying %q", tt.opts, err, tt.want)
			}
		})
	}
}

func TestEnqueueStoresThePromise(t *testing.T) {
	tests := []struct {
		name      string
		change    func(*Request)
		wantSet   string
		wantNB    time.Time
		wantNum   string
		wantTargs []string
	}{
		{"due now goes to ready", func(*Request) {}, "ready", t0, alice, []string{"201"}},
		{"later not-before goes to delayed", func(r *Request) { r.NotBefore = t0.Add(10 * time.Minute) }, "delayed", t0.Add(10 * time.Minute), alice, []string{"201"}},
		{"number typed with spaces is stored as E.164", func(r *Request) { r.Number = "+31 20 123 4501" }, "ready", t0, alice, []string{"201"}},
		{"no target", func(r *Request) { r.Target = ""; r.Reason = ReasonAPI }, "ready", t0, alice, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			r := request(alice)
			tt.change(&r)
			j, res, err := f.s.Enqueue(f.ctx, r)
			wantErr(t, err, nil)
			if res.Merged {
				t.Errorf("first request reported as merged")
			}
			if j.State != StatePending || j.Number != tt.wantNum || j.Queue != testQueue || j.Attempts != 0 || j.MaxAttempts != 3 {
				t.Errorf("job = %+v", j)
			}
			if !j.Created.Equal(t0) || !j.NotBefore.Equal(tt.wantNB) || !j.Deadline.Equal(r.Deadline) {
				t.Errorf("times: created %v not-before %v deadline %v", j.Created, j.NotBefore, j.Deadline)
			}
			if j.Reason() != r.Reason || fmt.Sprint(j.Targets) != fmt.Sprint(tt.wantTargs) || j.Owner != r.Target {
				t.Errorf("reasons %v targets %v owner %q", j.Reasons, j.Targets, j.Owner)
			}
			if j.Source != r.Source {
				t.Errorf("source = %+v, want %+v", j.Source, r.Source)
			}
			if got := f.get(t, j.Ref()); fmt.Sprint(got) != fmt.Sprint(j) {
				t.Errorf("Get = %+v\nwant  %+v", got, j)
			}
			f.assertIn(t, j.ID, tt.wantSet)
			if id, _ := f.rdb.Get(f.ctx, f.s.ks(testQueue).dedupe(alice)).Result(); id != j.ID {
				t.Errorf("dedupe key holds %q, want %q", id, j.ID)
			}
		})
	}
}

func TestEnqueueMergesARequestForAnOpenPromise(t *testing.T) {
	long := strings.Repeat("n", 200)
	tests := []struct {
		name         string
		first        func(*Request) // nil: request(alice) as it is
		second       func(*Request)
		before       func(f fixture, t *testing.T) // runs between the two requests
		wantDeadline time.Time
		wantReasons  []Reason
		wantTargets  []string
		wantState    State
		wantNote     string
	}{
		{
			name:         "later deadline keeps the earlier",
			second:       func(r *Request) { r.Deadline = t0.Add(2 * time.Hour) },
			wantDeadline: t0.Add(time.Hour), wantReasons: []Reason{ReasonVoicemail}, wantTargets: []string{"201"}, wantState: StatePending,
		},
		{
			name:         "earlier deadline moves the promise forward",
			second:       func(r *Request) { r.Deadline = t0.Add(30 * time.Minute) },
			wantDeadline: t0.Add(30 * time.Minute), wantReasons: []Reason{ReasonVoicemail}, wantTargets: []string{"201"}, wantState: StatePending,
		},
		{
			name:         "a new reason and target are both recorded",
			second:       func(r *Request) { r.Reason = ReasonUnansweredTransfer; r.Target = "202" },
			wantDeadline: t0.Add(time.Hour), wantReasons: []Reason{ReasonVoicemail, ReasonUnansweredTransfer}, wantTargets: []string{"201", "202"}, wantState: StatePending,
		},
		{
			name:         "a promise being dialled absorbs the request too",
			second:       func(r *Request) { r.Deadline = t0.Add(20 * time.Minute) },
			before:       func(f fixture, t *testing.T) { f.claim(t, ClaimOptions{}) },
			wantDeadline: t0.Add(20 * time.Minute), wantReasons: []Reason{ReasonVoicemail}, wantTargets: []string{"201"}, wantState: StateDialing,
		},
		// A note says what the agent must know (a voicemail cut by a socket gap: whether a
		// message was left is not known); merging must not lose it.
		{
			name:         "a note the open promise lacks is taken from the request",
			second:       func(r *Request) { r.Note = "whether a message was left is not known" },
			wantDeadline: t0.Add(time.Hour), wantReasons: []Reason{ReasonVoicemail}, wantTargets: []string{"201"}, wantState: StatePending,
			wantNote: "whether a message was left is not known",
		},
		{
			name:         "another note is added after the first",
			first:        func(r *Request) { r.Note = "asked for Dutch" },
			second:       func(r *Request) { r.Note = "whether a message was left is not known" },
			wantDeadline: t0.Add(time.Hour), wantReasons: []Reason{ReasonVoicemail}, wantTargets: []string{"201"}, wantState: StatePending,
			wantNote: "asked for Dutch; whether a message was left is not known",
		},
		{
			name:         "a note the promise holds already is not repeated",
			first:        func(r *Request) { r.Note = "asked for Dutch" },
			second:       func(r *Request) { r.Note = "asked for Dutch" },
			wantDeadline: t0.Add(time.Hour), wantReasons: []Reason{ReasonVoicemail}, wantTargets: []string{"201"}, wantState: StatePending,
			wantNote: "asked for Dutch",
		},
		{
			name:         "a note that would make the promise's note too long is left out",
			first:        func(r *Request) { r.Note = long },
			second:       func(r *Request) { r.Note = strings.Repeat("m", 100) },
			wantDeadline: t0.Add(time.Hour), wantReasons: []Reason{ReasonVoicemail}, wantTargets: []string{"201"}, wantState: StatePending,
			wantNote: long,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			r1 := request(alice)
			if tt.first != nil {
				tt.first(&r1)
			}
			first := f.enqueue(t, r1)
			if tt.before != nil {
				tt.before(f, t)
			}
			r := request(alice)
			tt.second(&r)
			j, res, err := f.s.Enqueue(f.ctx, r)
			wantErr(t, err, nil)
			if !res.Merged || j.ID != first.ID {
				t.Fatalf("merged=%v id=%s, want merged into %s", res.Merged, j.ID, first.ID)
			}
			if !j.Deadline.Equal(tt.wantDeadline) || fmt.Sprint(j.Reasons) != fmt.Sprint(tt.wantReasons) ||
				fmt.Sprint(j.Targets) != fmt.Sprint(tt.wantTargets) || j.State != tt.wantState {
				t.Errorf("deadline %v reasons %v targets %v state %s", j.Deadline, j.Reasons, j.Targets, j.State)
			}
			if j.Note != tt.wantNote {
				t.Errorf("note %q, want %q", j.Note, tt.wantNote)
			}
			if stored, err := f.s.Get(f.ctx, j.Ref()); err != nil || stored.Note != tt.wantNote {
				t.Errorf("stored note %q (%v), want %q", stored.Note, err, tt.wantNote)
			}
			if last := j.History[len(j.History)-1]; last.Result != "merged" {
				t.Errorf("history ends with %+v, want a merge", last)
			}
			if j.State == StatePending {
				if score, _ := f.zscore(t, f.s.ks(testQueue).ready(), j.ID); int64(score) != tt.wantDeadline.UnixMilli() {
					t.Errorf("ready score %v, want the merged deadline %d", score, tt.wantDeadline.UnixMilli())
				}
			}
			st, err := f.s.Stats(f.ctx, testQueue)
			wantErr(t, err, nil)
			if st.Made != 1 || st.Merged != 1 {
				t.Errorf("stats made=%d merged=%d, want 1 and 1", st.Made, st.Merged)
			}
		})
	}
}

func TestEnqueueAfterThePromiseFinishedOpensANewOne(t *testing.T) {
	f := newFixture(t)
	first := f.enqueue(t, request(alice))
	if _, err := f.s.Cancel(f.ctx, first.Ref(), "duplicate"); err != nil {
		t.Fatal(err)
	}
	second, res, err := f.s.Enqueue(f.ctx, request(alice))
	wantErr(t, err, nil)
	if res.Merged || second.ID == first.ID {
		t.Fatalf("merged=%v id=%s: a finished promise must not absorb new requests", res.Merged, second.ID)
	}
}

func TestEnqueueRefusesBadInputAndWritesNothing(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Request)
		want   error
		says   string
	}{
		{"empty number", func(r *Request) { r.Number = "" }, ErrInvalid, "empty"},
		{"number without country code", func(r *Request) { r.Number = "0201234501" }, ErrInvalid, "country code"},
		{"letters in number", func(r *Request) { r.Number = "+3120CALLME" }, ErrInvalid, "character"},
		{"deadline in the past", func(r *Request) { r.Deadline = t0.Add(-time.Minute) }, ErrInvalid, "deadline"},
		{"deadline now", func(r *Request) { r.Deadline = t0 }, ErrInvalid, "deadline"},
		{"no deadline", func(r *Request) { r.Deadline = time.Time{} }, ErrInvalid, "no deadline"},
		{"not-before at the deadline", func(r *Request) { r.NotBefore = r.Deadline }, ErrInvalid, "not-before"},
		{"unknown queue", func(r *Request) { r.Queue = "billing" }, ErrUnknownQueue, "billing"},
		{"hash tag in queue", func(r *Request) { r.Queue = "{sales}" }, ErrInvalidQueue, "hash tag"},
		{"unknown reason", func(r *Request) { r.Reason = "whim" }, ErrInvalid, "whim"},
		{"zero max attempts", func(r *Request) { r.MaxAttempts = 0 }, ErrInvalid, "max attempts"},
		{"control character in name", func(r *Request) { r.Name = "Eve\x1b[2J" }, ErrInvalid, "control character"},
		{"overlong target", func(r *Request) { r.Target = strings.Repeat("9", 300) }, ErrInvalid, "target"},
		{"invalid UTF-8 in channel", func(r *Request) { r.Source.Channel = "PJSIP/\xff" }, ErrInvalid, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.enqueue(t, request(bob)) // something to not disturb
			before := f.snapshot(t)
			r := request(alice)
			tt.change(&r)
			_, _, err := f.s.Enqueue(f.ctx, r)
			wantErr(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
			if strings.Contains(err.Error(), "1234501") {
				t.Errorf("error %q shows the customer's number unmasked", err)
			}
			f.assertUnchanged(t, before)
		})
	}
}

func TestClaimTakesTheEarliestDeadlineFirst(t *testing.T) {
	f := newFixture(t)
	// Deadlines in scrambled order, enqueued in that order, so EDF cannot be insertion order.
	const n = 200
	want := make([]string, n)
	for i := 0; i < n; i++ {
		slot := (i * 37) % n
		r := request(fmt.Sprintf("+3120%07d", i))
		r.Deadline = t0.Add(time.Duration(slot+1) * time.Minute)
		want[slot] = f.enqueue(t, r).ID
	}
	for i := 0; i < n; i++ {
		j := f.claim(t, ClaimOptions{})
		if j.ID != want[i] {
			t.Fatalf("claim %d got job %s (deadline %v), want %s", i, j.ID, j.Deadline, want[i])
		}
	}
	_, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute})
	wantErr(t, err, ErrEmpty)
}

func TestClaimRespectsNotBefore(t *testing.T) {
	f := newFixture(t)
	r := request(alice)
	r.NotBefore = t0.Add(10 * time.Minute)
	j := f.enqueue(t, r)

	_, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute})
	wantErr(t, err, ErrEmpty)
	next, ok, err := f.s.NextDue(f.ctx, testQueue)
	wantErr(t, err, nil)
	if !ok || !next.Equal(r.NotBefore) {
		t.Errorf("NextDue = %v %v, want %v", next, ok, r.NotBefore)
	}

	f.clk.Set(r.NotBefore.Add(-time.Millisecond))
	_, err = f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute})
	wantErr(t, err, ErrEmpty)

	f.clk.Set(r.NotBefore)
	got := f.claim(t, ClaimOptions{})
	if got.ID != j.ID || got.State != StateDialing {
		t.Fatalf("claimed %+v, want job %s dialing", got, j.ID)
	}
	f.assertIn(t, j.ID, "leases")
	if _, ok, _ := f.s.NextDue(f.ctx, testQueue); ok {
		t.Errorf("NextDue reports a job with the queue empty")
	}
}

func TestClaimPrefersTheClaimersOwnJob(t *testing.T) {
	tests := []struct {
		name   string
		prefer string
		share  float64
		at     time.Duration // clock offset from t0 at claim time
		want   string        // which job: "early" (target 201) or "own" (target 305)
	}{
		{"no preference: earliest deadline", "", 0, 0, "early"},
		{"preferred target is taken first", "305", 0, 0, "own"},
		{"preference without a matching job", "999", 0, 0, "early"},
		{"inside the preference window", "305", 0.5, 50 * time.Minute, "own"},
		{"after the preference window", "305", 0.5, 61 * time.Minute, "early"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			early := request(alice)
			early.Deadline = t0.Add(90 * time.Minute)
			own := request(bob)
			own.Target = "305"
			own.Deadline = t0.Add(2 * time.Hour) // window with share 0.5 ends at t0+60m
			ids := map[string]string{"early": f.enqueue(t, early).ID, "own": f.enqueue(t, own).ID}
			f.clk.Set(t0.Add(tt.at))
			j := f.claim(t, ClaimOptions{Prefer: tt.prefer, PreferShare: tt.share})
			if j.ID != ids[tt.want] {
				t.Errorf("claimed target %s, want the %s job", j.Target, tt.want)
			}
		})
	}
}

func TestClaimRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name  string
		queue string
		o     ClaimOptions
		want  error
	}{
		{"unknown queue", "billing", ClaimOptions{Worker: "w", Lease: time.Minute}, ErrUnknownQueue},
		{"no worker", testQueue, ClaimOptions{Lease: time.Minute}, ErrInvalid},
		{"no lease", testQueue, ClaimOptions{Worker: "w"}, ErrInvalid},
		{"negative lease", testQueue, ClaimOptions{Worker: "w", Lease: -time.Second}, ErrInvalid},
		{"share above one", testQueue, ClaimOptions{Worker: "w", Lease: time.Minute, PreferShare: 1.5}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.enqueue(t, request(alice))
			before := f.snapshot(t)
			_, err := f.s.Claim(f.ctx, tt.queue, tt.o)
			wantErr(t, err, tt.want)
			f.assertUnchanged(t, before)
		})
	}
}

// leased enqueues a job for alice and claims it, returning the claimed job.
func leased(t *testing.T, f fixture, maxAttempts int) *Job {
	t.Helper()
	r := request(alice)
	r.MaxAttempts = maxAttempts
	f.enqueue(t, r)
	return f.claim(t, ClaimOptions{})
}

// dialledLease is a claim that got as far as ringing the customer (MarkDialled).
func dialledLease(t *testing.T, f fixture, maxAttempts int) *Job {
	t.Helper()
	j := leased(t, f, maxAttempts)
	if _, err := f.s.MarkDialled(f.ctx, j.Ref(), j.Lease.Token); err != nil {
		t.Fatalf("MarkDialled: %v", err)
	}
	return j
}

func TestFencedChangesRefuseWrongTokensStatesAndIDs(t *testing.T) {
	ops := map[string]func(f fixture, ref Ref, token int64) error{
		"Extend": func(f fixture, ref Ref, token int64) error {
			_, err := f.s.Extend(f.ctx, ref, token, time.Minute)
			return err
		},
		"MarkConnected": func(f fixture, ref Ref, token int64) error {
			_, err := f.s.MarkConnected(f.ctx, ref, token, f.clk.Now())
			return err
		},
		"Complete": func(f fixture, ref Ref, token int64) error {
			_, err := f.s.Complete(f.ctx, ref, token, StateUnreachable, "no answer")
			return err
		},
		"Retry": func(f fixture, ref Ref, token int64) error {
			_, err := f.s.Retry(f.ctx, ref, token, f.clk.Now(), "busy")
			return err
		},
		"Release": func(f fixture, ref Ref, token int64) error {
			_, err := f.s.Release(f.ctx, ref, token, f.clk.Now(), "agent busy")
			return err
		},
	}
	cases := []struct {
		name  string
		setup func(f fixture, j *Job) (Ref, int64)
		want  error
	}{
		{"token the lease never had", func(f fixture, j *Job) (Ref, int64) { return j.Ref(), j.Lease.Token + 100 }, ErrStaleToken},
		{"job that does not exist", func(f fixture, j *Job) (Ref, int64) {
			return Ref{Queue: testQueue, ID: "01KAQZZZZZZZZZZZZZZZZZZZZZ"}, j.Lease.Token
		}, ErrNotFound},
		{"id that is not a ULID", func(f fixture, j *Job) (Ref, int64) { return Ref{Queue: testQueue, ID: "x:*"}, j.Lease.Token }, ErrInvalid},
		{"job in another queue", func(f fixture, j *Job) (Ref, int64) { return Ref{Queue: otherQ, ID: j.ID}, j.Lease.Token }, ErrNotFound},
		{"zero token", func(f fixture, j *Job) (Ref, int64) { return j.Ref(), 0 }, ErrInvalid},
		{"finished job", func(f fixture, j *Job) (Ref, int64) {
			if _, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateFailed, "refused"); err != nil {
				t.Fatal(err)
			}
			return j.Ref(), j.Lease.Token
		}, ErrWrongState},
	}
	for opName, op := range ops {
		for _, tt := range cases {
			t.Run(opName+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t)
				j := leased(t, f, 3)
				ref, token := tt.setup(f, j)
				before := f.snapshot(t)
				wantErr(t, op(f, ref, token), tt.want)
				f.assertUnchanged(t, before)
			})
		}
	}
}

func TestExtendMovesTheLease(t *testing.T) {
	f := newFixture(t)
	j := leased(t, f, 3)
	f.clk.Advance(50 * time.Second)
	got, err := f.s.Extend(f.ctx, j.Ref(), j.Lease.Token, 2*time.Minute)
	wantErr(t, err, nil)
	want := t0.Add(50*time.Second + 2*time.Minute)
	if !got.Lease.Expires.Equal(want) {
		t.Errorf("lease expires %v, want %v", got.Lease.Expires, want)
	}
	if score, _ := f.zscore(t, f.s.ks(testQueue).leases(), j.ID); int64(score) != want.UnixMilli() {
		t.Errorf("leases score %v, want %d", score, want.UnixMilli())
	}
	f.clk.Advance(time.Minute + 30*time.Second) // past the original lease, inside the new one
	n, err := f.s.Reclaim(f.ctx, testQueue)
	wantErr(t, err, nil)
	if n.Reclaimed != 0 {
		t.Errorf("Reclaim took back an extended lease")
	}
}

func TestCompleteFinishesWithTheOutcome(t *testing.T) {
	tests := []struct {
		name      string
		connectAt time.Duration // offset from t0; negative: never connected
		outcome   State
		want      error
	}{
		{"kept when connected before the deadline", 10 * time.Minute, StateKept, nil},
		{"kept when connected at the deadline", time.Hour, StateKept, nil},
		{"kept refused when connected after the deadline", time.Hour + time.Second, StateKept, ErrOutcome},
		{"late when connected after the deadline", 2 * time.Hour, StateLate, nil},
		{"late refused when connected in time", 10 * time.Minute, StateLate, ErrOutcome},
		{"kept refused when never connected", -1, StateKept, ErrWrongState},
		{"unreachable while dialing", -1, StateUnreachable, nil},
		{"failed for a refused number", -1, StateFailed, nil},
		{"expired while dialing", -1, StateExpired, nil},
		{"cancelled by the worker", -1, StateCancelled, nil},
		{"unreachable after connecting", 5 * time.Minute, StateUnreachable, nil},
		{"pending is not an outcome", -1, StatePending, ErrInvalid},
		{"made-up outcome", -1, State("great"), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			j := leased(t, f, 3)
			if tt.connectAt >= 0 {
				c, err := f.s.MarkConnected(f.ctx, j.Ref(), j.Lease.Token, t0.Add(tt.connectAt))
				wantErr(t, err, nil)
				if c.State != StateConnected || !c.ConnectedAt.Equal(t0.Add(tt.connectAt)) {
					t.Fatalf("after MarkConnected: state %s connected %v", c.State, c.ConnectedAt)
				}
			}
			f.clk.Advance(3 * time.Minute)
			before := f.snapshot(t)
			got, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, tt.outcome, "done")
			wantErr(t, err, tt.want)
			if tt.want != nil {
				f.assertUnchanged(t, before)
				return
			}
			assertFinished(t, f, got, tt.outcome)
		})
	}
}

// assertFinished checks everything a finished promise leaves behind.
func assertFinished(t *testing.T, f fixture, j Job, outcome State) {
	t.Helper()
	if j.State != outcome || j.Outcome != outcome || !j.FinishedAt.Equal(f.clk.Now()) {
		t.Errorf("state %s outcome %s finished %v, want %s at %v", j.State, j.Outcome, j.FinishedAt, outcome, f.clk.Now())
	}
	// The finished job's reply leaves out its history (Store.Complete); Get reads it.
	read := f.get(t, j.Ref())
	if h := read.History; len(h) == 0 || h[len(h)-1].Result != string(outcome) {
		t.Errorf("history %+v, want it to end with %s", h, outcome)
	}
	if read.State != outcome || read.Outcome != outcome {
		t.Errorf("read back: state %s outcome %s, want both %s", read.State, read.Outcome, outcome)
	}
	f.assertIn(t, j.ID, "done")
	k := f.s.ks(testQueue)
	if n, _ := f.rdb.Exists(f.ctx, k.dedupe(j.Number)).Result(); n != 0 {
		t.Errorf("dedupe key still there after the promise finished")
	}
	ttl, err := f.rdb.PTTL(f.ctx, k.job(j.ID)).Result()
	if err != nil || ttl <= 0 || ttl > DefaultRetention {
		t.Errorf("job hash TTL %v (%v), want the retention period", ttl, err)
	}
	if got := f.get(t, j.Ref()); got.State != outcome {
		t.Errorf("Get after finish: state %s", got.State)
	}
	// The finish is the event stream's last entry, and it says all an audit of the outcome reads.
	msgs, err := f.rdb.XRange(f.ctx, k.events(), "-", "+").Result()
	if err != nil || len(msgs) == 0 {
		t.Fatalf("event stream: %v entries, %v", len(msgs), err)
	}
	ev, err := ParseEvent(testQueue, msgs[len(msgs)-1])
	if err != nil {
		t.Fatalf("the finish event: %v", err)
	}
	v := ev.Data
	if ev.Promise != j.ID || ev.Type != EventType(outcome) || ev.Number != j.Number || v["reason"] != string(j.Reason()) ||
		v["reasons"] != `["`+string(j.Reason())+`"]` || v["deadline"] != fmt.Sprint(j.Deadline.UnixMilli()) ||
		!ev.At.Equal(j.FinishedAt) || v["attempts"] != fmt.Sprint(j.Attempts) {
		t.Errorf("finish event %+v does not describe job %s finishing %s", ev, j.ID, outcome)
	}
	// An event's empty fields read as absent, so a promise without a target names none.
	if target, named := v["target"]; named != (j.Target != "") || named && target != j.Target {
		t.Errorf("finish event names target %v; the job's is %q", target, j.Target)
	}
	if n := f.rdb.XLen(f.ctx, k.base+"outcomes").Val(); n != 0 {
		t.Errorf("the outcome stream holds %d entries; a finish is written to the event stream only", n)
	}
	st, err := f.s.Stats(f.ctx, testQueue)
	if err != nil || st.Finished[outcome] != 1 || st.Leased != 0 || st.Retained != 1 {
		t.Errorf("stats %+v (%v) after one %s", st, err, outcome)
	}
	if recent, err := f.s.Outcomes(f.ctx, testQueue, time.Minute); err != nil || recent[outcome] != 1 {
		t.Errorf("Outcomes over the last minute = %v (%v), want the one %s", recent, err, outcome)
	}
}

func TestRetryUsesAnAttemptAndWaitsForNotBefore(t *testing.T) {
	f := newFixture(t)
	j := leased(t, f, 3)
	nb := t0.Add(5 * time.Minute)
	got, err := f.s.Retry(f.ctx, j.Ref(), j.Lease.Token, nb, "busy")
	wantErr(t, err, nil)
	if got.State != StatePending || got.Attempts != 1 || !got.NotBefore.Equal(nb) || got.Lease.Token != 0 {
		t.Fatalf("after Retry: %+v", got)
	}
	f.assertIn(t, j.ID, "delayed")
	_, err = f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateKept, "")
	wantErr(t, err, ErrStaleToken)
	_, err = f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w2", Lease: time.Minute})
	wantErr(t, err, ErrEmpty)
	f.clk.Set(nb)
	again := f.claim(t, ClaimOptions{Worker: "w2"})
	if again.ID != j.ID || again.Lease.Token <= j.Lease.Token {
		t.Errorf("reclaimed job %s token %d, want %s with a token above %d", again.ID, again.Lease.Token, j.ID, j.Lease.Token)
	}
}

func TestRetryOnTheLastAttemptGivesUp(t *testing.T) {
	tests := []struct {
		name        string
		maxAttempts int
		retries     int
		want        State
	}{
		{"one attempt allowed", 1, 1, StateUnreachable},
		{"third of three", 3, 3, StateUnreachable},
		{"second of three", 3, 2, StatePending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			leased(t, f, tt.maxAttempts)
			var got Job
			for i := 0; i < tt.retries; i++ {
				if i > 0 {
					f.claim(t, ClaimOptions{})
				}
				cur, err := f.s.List(f.ctx, testQueue, ListOptions{States: []State{StateDialing}})
				wantErr(t, err, nil)
				got, err = f.s.Retry(f.ctx, cur[0].Ref(), cur[0].Lease.Token, f.clk.Now(), "no answer")
				wantErr(t, err, nil)
			}
			if got.State != tt.want || got.Attempts != tt.retries {
				t.Fatalf("after %d retries: state %s attempts %d, want %s", tt.retries, got.State, got.Attempts, tt.want)
			}
			if tt.want == StateUnreachable {
				assertFinished(t, f, got, StateUnreachable)
			}
		})
	}
}

func TestReleaseDoesNotUseAnAttempt(t *testing.T) {
	f := newFixture(t)
	j := leased(t, f, 1)
	got, err := f.s.Release(f.ctx, j.Ref(), j.Lease.Token, time.Time{}, "agent did not answer")
	wantErr(t, err, nil)
	if got.State != StatePending || got.Attempts != 0 {
		t.Fatalf("after Release: state %s attempts %d", got.State, got.Attempts)
	}
	f.assertIn(t, j.ID, "ready")
}

func TestCancelAndResolveCloseAnOpenPromise(t *testing.T) {
	tests := []struct {
		name    string
		state   State // the promise's state when it is closed
		resolve bool
	}{
		{"cancel pending", StatePending, false},
		{"cancel dialing", StateDialing, false},
		{"cancel connected", StateConnected, false},
		{"resolve pending", StatePending, true},
		{"resolve dialing", StateDialing, true},
		{"resolve connected", StateConnected, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			j := f.enqueue(t, request(alice))
			token := int64(0)
			if tt.state != StatePending {
				token = f.claim(t, ClaimOptions{}).Lease.Token
			}
			if tt.state == StateConnected {
				if _, err := f.s.MarkConnected(f.ctx, j.Ref(), token, t0); err != nil {
					t.Fatal(err)
				}
			}
			var got Job
			var err error
			want := StateCancelled
			if tt.resolve {
				want = StateResolved
				got, err = f.s.Resolve(f.ctx, testQueue, "+31 20 1234501", "customer called in")
			} else {
				got, err = f.s.Cancel(f.ctx, j.Ref(), "operator")
			}
			wantErr(t, err, nil)
			assertFinished(t, f, got, want)
			if token != 0 {
				_, err := f.s.Complete(f.ctx, j.Ref(), token, StateUnreachable, "")
				wantErr(t, err, ErrWrongState)
			}
			before := f.snapshot(t)
			_, err = f.s.Cancel(f.ctx, j.Ref(), "again")
			wantErr(t, err, ErrWrongState)
			_, err = f.s.Resolve(f.ctx, testQueue, alice, "again")
			wantErr(t, err, ErrNotFound)
			f.assertUnchanged(t, before)
		})
	}
}

func TestCancelAndResolveRefuseBadInput(t *testing.T) {
	f := newFixture(t)
	f.enqueue(t, request(alice))
	before := f.snapshot(t)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"cancel unknown id", func() error {
			_, err := f.s.Cancel(f.ctx, Ref{Queue: testQueue, ID: "01KAQZZZZZZZZZZZZZZZZZZZZZ"}, "")
			return err
		}, ErrNotFound},
		{"cancel in unknown queue", func() error {
			_, err := f.s.Cancel(f.ctx, Ref{Queue: "billing", ID: "01KAQZZZZZZZZZZZZZZZZZZZZZ"}, "")
			return err
		}, ErrUnknownQueue},
		{"resolve number without promise", func() error { _, err := f.s.Resolve(f.ctx, testQueue, bob, ""); return err }, ErrNotFound},
		{"resolve empty number", func() error { _, err := f.s.Resolve(f.ctx, testQueue, "", ""); return err }, ErrInvalid},
		{"resolve in the other queue", func() error { _, err := f.s.Resolve(f.ctx, otherQ, alice, ""); return err }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.call(), tt.want)
			f.assertUnchanged(t, before)
		})
	}
}

func TestReclaimTakesBackAnExpiredLeaseOnce(t *testing.T) {
	f := newFixture(t)
	j := dialledLease(t, f, 3)
	f.clk.Advance(59 * time.Second)
	n, err := f.s.Reclaim(f.ctx, testQueue)
	wantErr(t, err, nil)
	if n.Reclaimed != 0 {
		t.Fatalf("reclaimed %d jobs before the lease expired", n.Reclaimed)
	}
	if exp, ok, _ := f.s.NextLeaseExpiry(f.ctx, testQueue); !ok || !exp.Equal(t0.Add(time.Minute)) {
		t.Errorf("NextLeaseExpiry = %v %v, want %v", exp, ok, t0.Add(time.Minute))
	}

	f.clk.Advance(time.Second)
	n, err = f.s.Reclaim(f.ctx, testQueue)
	wantErr(t, err, nil)
	if n.Reclaimed != 1 || n.GaveUp != 0 {
		t.Fatalf("Reclaim = %+v, want one job back", n)
	}
	n, err = f.s.Reclaim(f.ctx, testQueue)
	wantErr(t, err, nil)
	if n.Reclaimed != 0 {
		t.Fatalf("second Reclaim took %d jobs back again", n.Reclaimed)
	}
	got := f.get(t, j.Ref())
	if got.State != StatePending || got.Attempts != 1 || got.History[len(got.History)-1].Result != "lease expired" {
		t.Errorf("after Reclaim: state %s attempts %d history %+v", got.State, got.Attempts, got.History)
	}
	f.assertIn(t, j.ID, "ready")

	// The crashed worker wakes up: everything it tries is refused.
	_, err = f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateUnreachable, "")
	wantErr(t, err, ErrStaleToken)
	_, err = f.s.Extend(f.ctx, j.Ref(), j.Lease.Token, time.Minute)
	wantErr(t, err, ErrStaleToken)

	// A new worker gets it with a newer token, and the old one still cannot finish it.
	again := f.claim(t, ClaimOptions{Worker: "w2"})
	if again.ID != j.ID || again.Lease.Token <= j.Lease.Token {
		t.Fatalf("claim after reclaim: %s token %d", again.ID, again.Lease.Token)
	}
	_, err = f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateUnreachable, "")
	wantErr(t, err, ErrStaleToken)
	_, err = f.s.Complete(f.ctx, j.Ref(), again.Lease.Token, StateUnreachable, "")
	wantErr(t, err, nil)
}

func TestReclaimOfTheLastAttemptGivesUp(t *testing.T) {
	f := newFixture(t)
	j := dialledLease(t, f, 1)
	f.clk.Advance(2 * time.Minute)
	n, err := f.s.Reclaim(f.ctx, testQueue)
	wantErr(t, err, nil)
	if n.Reclaimed != 1 || n.GaveUp != 1 {
		t.Fatalf("Reclaim = %+v, want one job given up", n)
	}
	assertFinished(t, f, f.get(t, j.Ref()), StateUnreachable)
}

// A customer reached by a worker that then died was called back: the promise is finished as
// kept or late by its connect time, never sent back to pending for a second call. A dialing
// job whose worker died is still handed back (TestReclaimTakesBackAnExpiredLeaseOnce).
func TestReclaimFinishesAConnectedJobInsteadOfCallingAgain(t *testing.T) {
	tests := []struct {
		name       string
		maxAttempt int
		connectAt  time.Duration // offset from t0; negative: never connected
		want       State
		wantResult ReclaimResult
	}{
		{"connected before the deadline: kept", 3, 10 * time.Minute, StateKept, ReclaimResult{Reclaimed: 1, Kept: 1, Finished: 1}},
		{"connected at the deadline: kept", 3, time.Hour, StateKept, ReclaimResult{Reclaimed: 1, Kept: 1, Finished: 1}},
		{"connected after the deadline: late", 3, time.Hour + time.Second, StateLate, ReclaimResult{Reclaimed: 1, Late: 1, Finished: 1}},
		{"connected on the last attempt: kept, not unreachable", 1, 10 * time.Minute, StateKept, ReclaimResult{Reclaimed: 1, Kept: 1, Finished: 1}},
		{"still dialing: pending again", 3, -1, StatePending, ReclaimResult{Reclaimed: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			r := request(alice)
			r.MaxAttempts = tt.maxAttempt
			f.enqueue(t, r)
			j := f.claim(t, ClaimOptions{Lease: 2 * time.Hour})
			if _, err := f.s.MarkDialled(f.ctx, j.Ref(), j.Lease.Token); err != nil {
				t.Fatal(err)
			}
			if tt.connectAt >= 0 {
				if _, err := f.s.MarkConnected(f.ctx, j.Ref(), j.Lease.Token, t0.Add(tt.connectAt)); err != nil {
					t.Fatal(err)
				}
			}
			f.clk.Advance(2 * time.Hour)
			res, err := f.s.Reclaim(f.ctx, testQueue)
			wantErr(t, err, nil)
			if res != tt.wantResult {
				t.Errorf("Reclaim = %+v, want %+v", res, tt.wantResult)
			}
			got := f.get(t, j.Ref())
			if tt.want.Open() {
				if got.State != tt.want || got.Attempts != 1 {
					t.Errorf("state %s attempts %d, want %s with the lost call counted", got.State, got.Attempts, tt.want)
				}
				return
			}
			assertFinished(t, f, got, tt.want)
			if got.Attempts != 0 {
				t.Errorf("attempts %d: a call that reached the customer is not a failed attempt", got.Attempts)
			}
			if last := got.History[len(got.History)-1]; last.Detail != "lease expired after connect (worker w1)" {
				t.Errorf("history ends with %+v, want the lease expiry after connect named", last)
			}
			_, err = f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, tt.want, "")
			wantErr(t, err, ErrStaleToken)
			if again, err := f.s.Reclaim(f.ctx, testQueue); err != nil || again != (ReclaimResult{}) {
				t.Errorf("second Reclaim = %+v, %v; want nothing left to take back", again, err)
			}
		})
	}
}

func TestFinishedPromisesAreRetainedThenForgotten(t *testing.T) {
	srvF := newFixture(t)
	clk := clock.NewFake(t0)
	s, err := New(srvF.rdb, Options{Clock: clk, Queues: []string{testQueue}, Retention: time.Hour})
	wantErr(t, err, nil)
	f := fixture{s: s, clk: clk, rdb: srvF.rdb, ctx: srvF.ctx}
	first := f.enqueue(t, request(alice))
	if _, err := f.s.Cancel(f.ctx, first.Ref(), ""); err != nil {
		t.Fatal(err)
	}
	ttl, _ := f.rdb.PTTL(f.ctx, f.s.ks(testQueue).job(first.ID)).Result()
	if ttl <= 0 || ttl > time.Hour {
		t.Errorf("finished job TTL %v, want at most the one-hour retention", ttl)
	}
	done, err := f.s.List(f.ctx, testQueue, ListOptions{States: []State{StateCancelled}})
	if err != nil || len(done) != 1 {
		t.Fatalf("List cancelled = %d jobs, %v", len(done), err)
	}

	// An hour on, a finish leaves the trimming to the periodic sweep (Reclaim), which drops
	// the first one from the done index and keeps the one still retained.
	f.clk.Advance(time.Hour + time.Millisecond)
	r := request(bob)
	r.Deadline = f.clk.Now().Add(time.Hour)
	second := f.enqueue(t, r)
	if _, err := f.s.Cancel(f.ctx, second.Ref(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Reclaim(f.ctx, testQueue); err != nil {
		t.Fatal(err)
	}
	if in := f.where(t, first.ID); len(in) != 0 {
		t.Errorf("job finished past the retention is still indexed in %v", in)
	}
	f.assertIn(t, second.ID, "done")
}

func TestListFiltersByStateInDeadlineOrder(t *testing.T) {
	f := newFixture(t)
	mk := func(number string, deadline, notBefore time.Duration) Job {
		r := request(number)
		r.Deadline = t0.Add(deadline)
		if notBefore > 0 {
			r.NotBefore = t0.Add(notBefore)
		}
		return f.enqueue(t, r)
	}
	dialing := mk("+31201230001", 10*time.Minute, 0) // earliest: claimed first
	f.claim(t, ClaimOptions{})
	late := mk("+31201230002", 50*time.Minute, 0)
	delayed := mk("+31201230003", 20*time.Minute, 5*time.Minute)
	soon := mk("+31201230004", 30*time.Minute, 0)
	cancelled := mk("+31201230005", 40*time.Minute, 0)
	if _, err := f.s.Cancel(f.ctx, cancelled.Ref(), ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    ListOptions
		want []Job
	}{
		{"everything", ListOptions{}, []Job{dialing, delayed, soon, cancelled, late}},
		{"pending only", ListOptions{States: []State{StatePending}}, []Job{delayed, soon, late}},
		{"open with a limit", ListOptions{States: []State{StatePending, StateDialing}, Limit: 2}, []Job{dialing, delayed}},
		{"finished", ListOptions{States: []State{StateCancelled, StateKept}}, []Job{cancelled}},
		{"nothing kept yet", ListOptions{States: []State{StateKept}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.s.List(f.ctx, testQueue, tt.o)
			wantErr(t, err, nil)
			var ids, want []string
			for _, j := range got {
				ids = append(ids, j.ID)
			}
			for _, j := range tt.want {
				want = append(want, j.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(want) {
				t.Errorf("List = %v, want %v", ids, want)
			}
		})
	}
	for _, bad := range []ListOptions{{Limit: -1}, {Limit: 5000}, {States: []State{"limbo"}}} {
		_, err := f.s.List(f.ctx, testQueue, bad)
		wantErr(t, err, ErrInvalid)
	}
	_, err := f.s.List(f.ctx, "billing", ListOptions{})
	wantErr(t, err, ErrUnknownQueue)
}

func TestQueuesAreIsolated(t *testing.T) {
	f := newFixture(t)
	f.enqueue(t, request(alice))
	r := request(alice)
	r.Queue = otherQ
	j, res, err := f.s.Enqueue(f.ctx, r)
	wantErr(t, err, nil)
	if res.Merged {
		t.Errorf("a request in another queue merged across queues")
	}
	_, err = f.s.Claim(f.ctx, otherQ, ClaimOptions{Worker: "w", Lease: time.Minute})
	wantErr(t, err, nil)
	_, err = f.s.Claim(f.ctx, otherQ, ClaimOptions{Worker: "w", Lease: time.Minute})
	wantErr(t, err, ErrEmpty)
	if !strings.Contains(f.s.ks(otherQ).job(j.ID), "{"+otherQ+"}") {
		t.Errorf("job key %s is not under the queue's hash tag", f.s.ks(otherQ).job(j.ID))
	}
}

// roundTrips counts what reaches Redis: a command or a whole pipeline is one round trip.
type roundTrips struct{ n int }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { r.n++; return next(ctx, cmd) }
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.n++; return next(ctx, cmds) }
}

func TestAPromiseLifetimeTakesThreeRoundTrips(t *testing.T) {
	f := newFixture(t)
	wantErr(t, f.s.Load(f.ctx), nil)
	counter := &roundTrips{}
	f.rdb.AddHook(counter)
	j := f.enqueue(t, request(alice))
	c := f.claim(t, ClaimOptions{})
	if _, err := f.s.Complete(f.ctx, j.Ref(), c.Lease.Token, StateUnreachable, "no answer"); err != nil {
		t.Fatal(err)
	}
	if counter.n > 3 {
		t.Errorf("enqueue → claim → complete took %d round trips, want at most 3", counter.n)
	}
}

func TestPromisesSurviveARedisRestartWithAOF(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	rdb := srv.Client()
	clk := clock.NewFake(t0)
	s, err := New(rdb, Options{Clock: clk, Queues: []string{testQueue}})
	wantErr(t, err, nil)
	f := fixture{s: s, clk: clk, rdb: rdb, ctx: context.Background()}
	j := f.enqueue(t, request(alice))
	held := f.claim(t, ClaimOptions{})

	srv.Restart() // also empties the script cache: the next calls must reload their scripts

	got := f.get(t, j.Ref())
	if got.State != StateDialing || got.Lease.Token != held.Lease.Token {
		t.Fatalf("after restart: state %s token %d, want dialing with token %d", got.State, got.Lease.Token, held.Lease.Token)
	}
	done, err := f.s.Complete(f.ctx, j.Ref(), held.Lease.Token, StateUnreachable, "no answer")
	wantErr(t, err, nil)
	if done.State != StateUnreachable {
		t.Errorf("state %s after completing across a restart", done.State)
	}
}

// A claim answers only the values of the fields it
// names (claimFields), so a field of the job it left out would be lost to every claimer. The
// job here has every field a claimed job can have; the claim must answer what a read of the
// job right after it does, but the history (a claimer has no use for it) and whether it is
// the job's first claim (only a claim knows).
func TestAClaimAnswersTheJobAsAReadOfItDoes(t *testing.T) {
	f := newFixture(t)
	r := request(alice)
	r.Deadline = t0.Add(3 * time.Hour)
	r.Note = "cut off mid-message"
	r.HoldUntil = t0.Add(time.Hour)
	r.AtRiskFromStart = true
	r.ExternalRef = "CRM-1"
	f.enqueue(t, r)
	merged := request(alice)
	merged.Reason, merged.Target, merged.Deadline = ReasonUnansweredTransfer, "202", r.Deadline
	f.enqueue(t, merged)
	first := f.claim(t, ClaimOptions{})
	if _, err := f.s.Retry(f.ctx, first.Ref(), first.Lease.Token, f.clk.Now(), "no answer"); err != nil {
		t.Fatal(err)
	}
	claimed := f.claim(t, ClaimOptions{})
	read, err := f.s.Get(f.ctx, claimed.Ref())
	if err != nil {
		t.Fatal(err)
	}
	// Every field of the read is set but those a claim clears or no claim sets: the test
	// proves nothing about a field it leaves empty.
	unset := map[string]bool{"History": true, "DialledAt": true, "ConnectedAt": true, "Outcome": true, "FinishedAt": true}
	v := reflect.ValueOf(read)
	for i := 0; i < v.NumField(); i++ {
		if name := v.Type().Field(i).Name; !unset[name] && v.Field(i).IsZero() {
			t.Errorf("the job read after the claim has no %s; the test must give it one", name)
		}
	}
	if read.Source.AsteriskID == "" || read.Source.LinkedID == "" || read.Source.Channel == "" {
		t.Errorf("the job's source is %+v; the test must give it every part", read.Source)
	}
	if len(read.History) == 0 {
		t.Fatalf("the job read after the claim has no history")
	}
	if !claimed.Lease.Heard.IsZero() || claimed.Lease.First {
		t.Errorf("the second claim answered heard %v, first %v; want neither", claimed.Lease.Heard, claimed.Lease.First)
	}
	read.History = nil
	if !reflect.DeepEqual(*claimed, read) {
		t.Errorf("the claim answered\n%+v\na read of the job answers\n%+v", *claimed, read)
	}
}

// A claim says whether it is the job's first: only then can no call of an earlier claim be on
// the PBX, and the dialer spares Asterisk a listing of every channel. Whatever gave the job
// back — a release, a retry, a lease taken back — a later claim is not the first, with or
// without an owner preference.
func TestAClaimSaysWhetherItIsTheJobsFirst(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prefer   string
		giveBack func(f fixture, t *testing.T, j *Job)
	}{
		{"released", "", func(f fixture, t *testing.T, j *Job) {
			_, err := f.s.Release(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now(), "agent busy")
			wantErr(t, err, nil)
		}},
		{"retried", "201", func(f fixture, t *testing.T, j *Job) {
			_, err := f.s.Retry(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now(), "no answer")
			wantErr(t, err, nil)
			f.clk.Set(f.clk.Now().Add(time.Hour))
		}},
		{"taken back when its lease expired", "", func(f fixture, t *testing.T, j *Job) {
			f.clk.Set(j.Lease.Expires.Add(time.Second))
			_, err := f.s.Reclaim(f.ctx, testQueue)
			wantErr(t, err, nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r := request(alice)
			r.Deadline = t0.Add(3 * time.Hour)
			f.enqueue(t, r)
			first := f.claim(t, ClaimOptions{Prefer: tc.prefer})
			if first == nil || !first.Lease.First {
				t.Fatalf("the job's first claim: %+v; want it marked first", first)
			}
			tc.giveBack(f, t, first)
			again := f.claim(t, ClaimOptions{Prefer: tc.prefer})
			if again == nil || again.ID != first.ID {
				t.Fatalf("claimed again: %+v; want %s", again, first.ID)
			}
			if again.Lease.First {
				t.Errorf("a claim after the job was %s is marked first", tc.name)
			}
			if got, err := f.s.Get(f.ctx, again.Ref()); err != nil || got.Lease.First {
				t.Errorf("a read of the job says first=%v (%v); only a claim knows", got.Lease.First, err)
			}
		})
	}
}

// Another daemon heard the customer of a claim answer (its janitor hears every callback leg
// through the monitor application), and then the claim's daemon died before it wrote the
// connect. The heard answer is in Redis, so the lease expiry finishes the promise kept or late
// by the heard time, with no attempt charged, instead of ringing the customer again after they
// talked to an agent. An answer heard under an earlier claim says nothing of this one.
func TestReclaimFinishesAClaimWhoseCustomerAnotherDaemonHeardAnswer(t *testing.T) {
	for _, tc := range []struct {
		name         string
		heardAfter   time.Duration // after the claim
		earlierClaim bool          // heard under the claim before this one
		wantState    State
		wantAttempts int
	}{
		{"heard before the deadline", 10 * time.Second, false, StateKept, 0},
		{"heard after the deadline", 2 * time.Hour, false, StateLate, 0},
		{"heard under an earlier claim", 10 * time.Second, true, StatePending, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			j := dialledLease(t, f, 3)
			heard := f.clk.Now().Add(tc.heardAfter)
			_, err := f.s.MarkHeard(f.ctx, j.Ref(), j.Lease.Token, heard)
			wantErr(t, err, nil)
			if tc.earlierClaim {
				_, err := f.s.Release(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now(), "agent hung up")
				wantErr(t, err, nil)
				j = f.claim(t, ClaimOptions{})
				_, err = f.s.MarkDialled(f.ctx, j.Ref(), j.Lease.Token)
				wantErr(t, err, nil)
			}
			f.clk.Set(j.Lease.Expires.Add(time.Second))
			_, err = f.s.Reclaim(f.ctx, testQueue)
			wantErr(t, err, nil)
			got, err := f.s.Get(f.ctx, j.Ref())
			wantErr(t, err, nil)
			if got.State != tc.wantState || got.Attempts != tc.wantAttempts {
				t.Fatalf("after the lease expired: %s with %d attempts; want %s with %d", got.State, got.Attempts, tc.wantState, tc.wantAttempts)
			}
			if tc.wantState.Open() {
				return
			}
			if !got.ConnectedAt.Equal(heard) {
				t.Errorf("connected at %v; want the heard time %v", got.ConnectedAt, heard)
			}
			if _, err := f.s.Extend(f.ctx, j.Ref(), j.Lease.Token, time.Minute); !errors.Is(err, ErrStaleToken) {
				t.Errorf("the dead claim's token after the reclaim: %v; want it refused as stale", err)
			}
		})
	}
}

// A read of a promise says when another daemon heard its current claim's customer answer, so
// a claim's own daemon that heard nothing (another client holding its control app) can learn it
// before it hangs up a live conversation; an earlier claim's witness says nothing of this claim.
func TestAReadShowsTheAnswerAnotherDaemonHeardForTheCurrentClaimOnly(t *testing.T) {
	f := newFixture(t)
	j := dialledLease(t, f, 3)
	if got := f.get(t, j.Ref()); !got.Lease.Heard.IsZero() {
		t.Fatalf("heard %v before anyone heard anything", got.Lease.Heard)
	}
	heard := f.clk.Now().Add(5 * time.Second)
	_, err := f.s.MarkHeard(f.ctx, j.Ref(), j.Lease.Token, heard)
	wantErr(t, err, nil)
	if got := f.get(t, j.Ref()); !got.Lease.Heard.Equal(heard) {
		t.Errorf("heard %v; want %v", got.Lease.Heard, heard)
	}
	_, err = f.s.Release(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now(), "agent hung up")
	wantErr(t, err, nil)
	again := f.claim(t, ClaimOptions{})
	if !again.Lease.Heard.IsZero() {
		t.Errorf("the next claim reads heard %v; the witness was of the claim before", again.Lease.Heard)
	}
	if got := f.get(t, again.Ref()); !got.Lease.Heard.IsZero() {
		t.Errorf("a read under the next claim says heard %v; the witness was of the claim before", got.Lease.Heard)
	}
}

func TestMarkHeardRefusesWhatIsNotALiveDialingClaim(t *testing.T) {
	f := newFixture(t)
	j := dialledLease(t, f, 3)
	_, err := f.s.MarkConnected(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now())
	wantErr(t, err, nil)
	before := f.snapshot(t)
	for _, tc := range []struct {
		name  string
		ref   Ref
		token int64
		at    time.Time
		want  error
	}{
		{"a claim that wrote its connect", j.Ref(), j.Lease.Token, f.clk.Now(), ErrWrongState},
		{"another claim's token", j.Ref(), j.Lease.Token + 7, f.clk.Now(), ErrStaleToken},
		{"no time", j.Ref(), j.Lease.Token, time.Time{}, ErrInvalid},
		{"an unknown promise", Ref{Queue: testQueue, ID: "01KAQZZZZZZZZZZZZZZZZZZZZZ"}, 5, f.clk.Now(), ErrNotFound},
		{"an unknown queue", Ref{Queue: "billing", ID: j.ID}, j.Lease.Token, f.clk.Now(), ErrUnknownQueue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.s.MarkHeard(f.ctx, tc.ref, tc.token, tc.at)
			wantErr(t, err, tc.want)
			f.assertUnchanged(t, before)
		})
	}
}

// A new promise's one-element lists are written without cjson when nothing in them needs
// escaping; whatever a target holds, it reads back as it was given, and a claim preferring it
// finds the job through its index.
func TestATargetOfAnyTextReadsBackAsGiven(t *testing.T) {
	for _, target := range []string{"201", `2"01`, `a\b`, "sales/2", "Zoë", "2 01"} {
		t.Run(target, func(t *testing.T) {
			f := newFixture(t)
			r := request(alice)
			r.Target = target
			j := f.enqueue(t, r)
			got := f.get(t, j.Ref())
			if got.Target != target || len(got.Targets) != 1 || got.Targets[0] != target {
				t.Errorf("target %q, targets %q; want %q", got.Target, got.Targets, target)
			}
			if raw := f.rdb.HGet(f.ctx, f.s.ks(testQueue).job(j.ID), "targets").Val(); !json.Valid([]byte(raw)) {
				t.Errorf("stored targets %q are not JSON", raw)
			}
			c, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute, Prefer: target})
			if err != nil || c.ID != j.ID {
				t.Fatalf("claim preferring %q = %v, %v", target, c, err)
			}
			if n := f.rdb.ZCard(f.ctx, f.s.ks(testQueue).forTarget(target)).Val(); n != 0 {
				t.Errorf("the index of %q holds %d after the claim", target, n)
			}
		})
	}
}

// A finish answers the values of the fields Complete's doc names, without their names
// (finishedFields), so a field left out of the list, or two in the wrong order, would reach
// the dialer wrong. For a complete, and for the retry that was the last attempt, what it
// answers must be what a read of the finished job says of those fields; the rest is zero.
func TestAFinishAnswersTheFieldsCompleteNamesAsAReadOfTheJobDoes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		finish func(f fixture, t *testing.T, j *Job) Job
	}{
		{"kept", func(f fixture, t *testing.T, j *Job) Job {
			if _, err := f.s.MarkDialled(f.ctx, j.Ref(), j.Lease.Token); err != nil {
				t.Fatal(err)
			}
			if _, err := f.s.MarkConnected(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now()); err != nil {
				t.Fatal(err)
			}
			done, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateKept, "talked")
			wantErr(t, err, nil)
			return done
		}},
		{"failed", func(f fixture, t *testing.T, j *Job) Job {
			done, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateFailed, "channel gone")
			wantErr(t, err, nil)
			return done
		}},
		{"unreachable by the last retry", func(f fixture, t *testing.T, j *Job) Job {
			done, err := f.s.Retry(f.ctx, j.Ref(), j.Lease.Token, f.clk.Now(), "no answer")
			wantErr(t, err, nil)
			return done
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r := request(alice)
			r.MaxAttempts = 2
			r.NotBefore = t0.Add(time.Minute)
			f.enqueue(t, r)
			merged := request(alice)
			merged.Reason, merged.Target = ReasonUnansweredTransfer, "202"
			f.enqueue(t, merged)
			f.clk.Advance(2 * time.Minute)
			// One attempt used, so the count answered is not a zero the decoder makes up.
			first := f.claim(t, ClaimOptions{Worker: "agent-3"})
			_, err := f.s.Retry(f.ctx, first.Ref(), first.Lease.Token, f.clk.Now(), "busy")
			wantErr(t, err, nil)
			j := f.claim(t, ClaimOptions{Worker: "agent-7"})
			f.clk.Advance(time.Minute)
			got := tc.finish(f, t, j)
			read, err := f.s.Get(f.ctx, j.Ref())
			wantErr(t, err, nil)
			want := Job{ID: read.ID, Queue: read.Queue, Number: read.Number, State: read.State, Outcome: read.Outcome,
				Reasons: read.Reasons, Target: read.Target, Created: read.Created, NotBefore: read.NotBefore,
				Deadline: read.Deadline, Attempts: read.Attempts, MaxAttempts: read.MaxAttempts,
				ConnectedAt: read.ConnectedAt, FinishedAt: read.FinishedAt, Lease: Lease{Worker: read.Lease.Worker}}
			// The test proves nothing about a field it leaves empty: every one is set but the
			// connect time of a promise that never connected.
			v := reflect.ValueOf(want)
			for i := 0; i < v.NumField(); i++ {
				name := v.Type().Field(i).Name
				if v.Field(i).IsZero() && name != "ConnectedAt" && !map[string]bool{"Name": true, "Targets": true,
					"Owner": true, "Source": true, "History": true, "DialledAt": true, "Note": true, "HoldUntil": true,
					"AtRiskFromStart": true, "ExternalRef": true}[name] {
					t.Errorf("the finished job read back has no %s; the test must give it one", name)
				}
			}
			if len(want.Reasons) != 2 || want.Lease.Worker != "agent-7" {
				t.Errorf("read back reasons %v, worker %q; want two reasons and agent-7", want.Reasons, want.Lease.Worker)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the finish answered\n%+v\na read of the job says\n%+v", got, want)
			}
		})
	}
}

// A promise that outlived its dedupe key (it expires an hour past the max open age, and the
// sweep that ends such promises may not have run) must not, when it finishes, take away the
// key of the newer promise made for the same number since: the next request for the number
// would open a third promise instead of merging into the open one. The key is left to the
// newer promise with a time to live that still ends an hour past its max open age.
func TestAFinishLeavesTheDedupeKeyOfANewerPromiseForTheNumber(t *testing.T) {
	for _, tc := range []struct {
		name   string
		finish func(f fixture, t *testing.T, old Job)
	}{
		{"completed", func(f fixture, t *testing.T, old Job) {
			j := f.claim(t, ClaimOptions{})
			if j.ID != old.ID {
				t.Fatalf("claimed %s, want the older promise %s", j.ID, old.ID)
			}
			_, err := f.s.Complete(f.ctx, j.Ref(), j.Lease.Token, StateFailed, "")
			wantErr(t, err, nil)
		}},
		{"cancelled", func(f fixture, t *testing.T, old Job) {
			_, err := f.s.Cancel(f.ctx, old.Ref(), "")
			wantErr(t, err, nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			k := f.s.ks(testQueue)
			old := f.enqueue(t, request(alice))
			f.rdb.Del(f.ctx, k.dedupe(alice)) // as if it had expired
			f.clk.Advance(time.Hour)
			r := request(alice)
			r.Deadline = t0.Add(3 * time.Hour)
			newer := f.enqueue(t, r)
			if newer.ID == old.ID {
				t.Fatal("the second request merged; the test needs a second promise")
			}
			tc.finish(f, t, old)
			if got, _ := f.rdb.Get(f.ctx, k.dedupe(alice)).Result(); got != newer.ID {
				t.Fatalf("dedupe key holds %q after the older promise finished, want the newer %s", got, newer.ID)
			}
			ttl := f.rdb.PTTL(f.ctx, k.dedupe(alice)).Val()
			if want := DefaultMaxOpenAge + time.Hour; ttl > want || ttl < want-time.Minute {
				t.Errorf("dedupe key's time to live %v, want about %v (the newer promise's)", ttl, want)
			}
			merged, _, err := f.s.Enqueue(f.ctx, r)
			wantErr(t, err, nil)
			if merged.ID != newer.ID {
				t.Errorf("a third request made %s, want it merged into %s", merged.ID, newer.ID)
			}
		})
	}
}

// A merge takes the name and the external reference the open promise lacks from the request,
// and never overwrites ones it has: they come to the script as the request's optional fields.
func TestAMergeFillsTheNameAndReferenceThePromiseLacks(t *testing.T) {
	tests := []struct {
		name              string
		first, second     func(*Request)
		wantName, wantRef string
	}{
		{"both missing: taken from the request",
			func(r *Request) { r.Name, r.ExternalRef = "", "" },
			func(r *Request) { r.Name, r.ExternalRef = "Bea", "CRM-9" }, "Bea", "CRM-9"},
		{"both held: kept",
			func(r *Request) { r.Name, r.ExternalRef = "Ada", "CRM-1" },
			func(r *Request) { r.Name, r.ExternalRef = "Bea", "CRM-9" }, "Ada", "CRM-1"},
		{"the request has neither: nothing changes",
			func(r *Request) { r.Name, r.ExternalRef = "", "CRM-1" },
			func(r *Request) { r.Name, r.ExternalRef, r.Source = "", "", Source{} }, "", "CRM-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			r1 := request(alice)
			tt.first(&r1)
			first := f.enqueue(t, r1)
			r2 := request(alice)
			tt.second(&r2)
			j, res, err := f.s.Enqueue(f.ctx, r2)
			if err != nil || !res.Merged || j.ID != first.ID {
				t.Fatalf("second request: %+v %v, want merged into %s", res, err, first.ID)
			}
			stored := f.get(t, j.Ref())
			for _, got := range []Job{j, stored} {
				if got.Name != tt.wantName || got.ExternalRef != tt.wantRef {
					t.Errorf("name %q ref %q, want %q and %q", got.Name, got.ExternalRef, tt.wantName, tt.wantRef)
				}
			}
		})
	}
}
