package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// A delivery carries the event as JSON, its stable id as webhook-id, and a signature the
// receiver can recompute from the secret, the id, the timestamp and the body alone.
func TestADeliveryIsSignedOverIDTimestampAndBody(t *testing.T) {
	clk := clock.NewFake(start)
	h := newHarness(t, clk)
	rc := newReceiver(t, answerOK)
	ep := endpoint(t, "crm", rc)
	r := h.run("daemon-1", Options{}, ep)

	h.promise("sales", "+31201234567")
	clk.Advance(time.Minute)
	evs := h.keep("sales")
	kept := evs[len(evs)-1]
	waitFor(t, "the promise's events are delivered", func() bool { return r.count("crm", ResultDelivered) == 5 })

	got := rc.requests()
	if len(got) != 5 {
		t.Fatalf("the endpoint got %d requests, want 5", len(got))
	}
	req := got[len(got)-1]
	if req.ID != kept.ID || !strings.HasPrefix(req.ID, "sales/") || kept.Type != queue.EventKept {
		t.Errorf("webhook-id %q, want the kept event's id %q", req.ID, kept.ID)
	}
	if now := clk.Now().Unix(); req.Timestamp != strconv.FormatInt(now, 10) {
		t.Errorf("webhook-timestamp %q, want the daemon clock's %d", req.Timestamp, now)
	}
	mac := hmac.New(sha256.New, ep.Key)
	mac.Write([]byte(req.ID + "." + req.Timestamp + "."))
	mac.Write(req.Body)
	if want := "v1," + b64(mac.Sum(nil)); req.Signature != want {
		t.Errorf("webhook-signature %q, want %q", req.Signature, want)
	}
	if req.ContentType != "application/json" {
		t.Errorf("Content-Type %q", req.ContentType)
	}
	// The body is the event as the store reads it, the number in full: the endpoint is the CRM's.
	want, err := json.Marshal(kept)
	if err != nil {
		t.Fatal(err)
	}
	if string(req.Body) != string(want) || !strings.Contains(string(req.Body), `"number":"+31201234567"`) {
		t.Errorf("body %s, want %s", req.Body, want)
	}
	for i, e := range append(evs[:0:0], evs...) {
		if got[i+1].ID != e.ID {
			t.Errorf("request %d is for %s, want %s: one daemon sends a queue's events in order", i+1, got[i+1].ID, e.ID)
		}
	}
	waitFor(t, "the event is acknowledged", func() bool { return h.pending("sales", "crm") == 0 })
}

func TestMaskNumbersHidesTheNumberFromTheEndpoint(t *testing.T) {
	h := newHarness(t, clock.NewFake(start))
	rc := newReceiver(t, answerOK)
	ep := endpoint(t, "crm", rc)
	ep.MaskNumbers = true
	r := h.run("daemon-1", Options{}, ep)

	h.promise("sales", "+31201234567")
	waitFor(t, "the event is delivered", func() bool { return r.count("crm", ResultDelivered) == 1 })
	body := string(rc.requests()[0].Body)
	if strings.Contains(body, "1234567") || !strings.Contains(body, `"number":"+31*******67"`) {
		t.Fatalf("body %s still shows the number", body)
	}
}

// The faults an endpoint can have, each answered by retrying until it takes the event.
func TestAFaultyEndpointGetsTheEventOnceItAnswers(t *testing.T) {
	tests := []struct {
		name string
		// answer is the endpoint's behaviour on its n-th request for the event.
		answer     func(w http.ResponseWriter, r *http.Request, n int)
		timeout    time.Duration
		wantFailed float64
		wantLogged string // in the failure's log line
	}{
		{
			name: "fails twice with 500, then recovers",
			answer: func(w http.ResponseWriter, _ *http.Request, n int) {
				if n <= 2 {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				w.WriteHeader(http.StatusOK)
			},
			timeout: 5 * time.Second, wantFailed: 2, wantLogged: "HTTP 500",
		},
		{
			name: "does not answer in time once",
			answer: func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					<-r.Context().Done() // until the deliverer gives up on it
					return
				}
				w.WriteHeader(http.StatusOK)
			},
			timeout: 500 * time.Millisecond, wantFailed: 1, wantLogged: "no answer: timeout after 500ms",
		},
		{
			name: "answers slowly, within the timeout",
			answer: func(w http.ResponseWriter, _ *http.Request, _ int) {
				time.Sleep(300 * time.Millisecond)
				w.WriteHeader(http.StatusAccepted)
			},
			timeout: 10 * time.Second, wantFailed: 0,
		},
		{
			name: "redirects elsewhere, then answers",
			answer: func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
					return
				}
				w.WriteHeader(http.StatusOK)
			},
			timeout: 5 * time.Second, wantFailed: 1, wantLogged: "HTTP 307",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, clock.Real{})
			rc := newReceiver(t, tc.answer)
			ep := endpoint(t, "crm", rc)
			ep.Timeout = tc.timeout
			core, logs := observer.New(zapcore.WarnLevel)
			r := h.run("daemon-1", Options{Logger: zap.New(core)}, ep)

			_, id := h.promise("support", "+31201234567")
			waitFor(t, "the event is delivered", func() bool { return r.count("crm", ResultDelivered) == 1 })
			waitFor(t, "the event is acknowledged", func() bool { return h.pending("support", "crm") == 0 })

			if n := rc.requestsFor(id); n != int(tc.wantFailed)+1 {
				t.Errorf("the endpoint got %d requests for the event, want %v", n, tc.wantFailed+1)
			}
			if got := r.count("crm", ResultFailed); got != tc.wantFailed {
				t.Errorf("failed = %v, want %v", got, tc.wantFailed)
			}
			if got := r.count("crm", ResultDeadLettered); got != 0 {
				t.Errorf("dead_lettered = %v", got)
			}
			for _, e := range logs.All() {
				line := fmt.Sprint(e.Message, " ", e.ContextMap()["result"])
				if !strings.Contains(line, tc.wantLogged) || tc.wantLogged == "" {
					t.Errorf("logged %q, want the failure %q", line, tc.wantLogged)
				}
				if strings.Contains(line, "t0ps3cret") {
					t.Errorf("the log quotes the endpoint's URL with its token: %q", line)
				}
			}
			if tc.wantFailed > 0 && logs.Len() == 0 {
				t.Errorf("no failure was logged")
			}
		})
	}
}

// An endpoint that never takes the event is retried until retry_for has passed since the
// first attempt, tried one last time then, and the event is dead-lettered with the reason.
func TestAnEndpointThatAlwaysFailsGetsTheEventDeadLettered(t *testing.T) {
	clk := clock.NewFake(start)
	h := newHarness(t, clk)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusServiceUnavailable) })
	ep := endpoint(t, "crm", rc)
	ep.RetryFor = time.Hour
	r := h.run("daemon-1", Options{Backoff: time.Minute, MaxBackoff: 10 * time.Minute}, ep)

	j, id := h.promise("sales", "+31201234567")
	for tries := 1; r.count("crm", ResultDeadLettered) == 0; tries++ {
		if tries > 100 {
			t.Fatal("still retrying after 100 attempts")
		}
		waitFor(t, "the next attempt", func() bool { return rc.requestsFor(id) >= tries })
		waitFor(t, "the attempt is settled", func() bool {
			return r.count("crm", ResultFailed)+r.count("crm", ResultDeadLettered) >= float64(tries)
		})
		clk.Advance(10 * time.Minute)
	}

	got := rc.requests()
	first, _ := strconv.ParseInt(got[0].Timestamp, 10, 64)
	last, _ := strconv.ParseInt(got[len(got)-1].Timestamp, 10, 64)
	if span := time.Duration(last-first) * time.Second; span < time.Hour || span > time.Hour+10*time.Minute {
		t.Errorf("attempts from first to last spanned %s, want retry_for (1h) and at most one step more", span)
	}
	if failed := r.count("crm", ResultFailed); int(failed) != len(got)-1 {
		t.Errorf("failed = %v after %d attempts, want every attempt but the last", failed, len(got))
	}
	ctx := context.Background()
	dead, err := h.rdb.XRange(ctx, h.store.EventStreamKey("sales")+":webhook:crm:dead", "-", "+").Result()
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters %v, %v; want one", dead, err)
	}
	d := dead[0].Values
	if d["event"] != id || d["type"] != "made" || d["promise"] != j.ID || d["last"] != "HTTP 503" ||
		d["reason"] != "not delivered within retry_for (1h0m0s)" || d["attempts"] != strconv.Itoa(len(got)) {
		t.Errorf("dead letter %v", d)
	}
	for k, v := range d {
		if strings.Contains(v.(string), "1234567") {
			t.Errorf("dead letter field %s holds the number: %v", k, v)
		}
	}
	if n := h.pending("sales", "crm"); n != 0 {
		t.Errorf("%d events still pending", n)
	}
	for _, key := range []string{":webhook:crm:attempts", ":webhook:crm:due"} {
		if n, _ := h.rdb.Exists(ctx, h.store.EventStreamKey("sales")+key).Result(); n != 0 {
			t.Errorf("%s left behind", key)
		}
	}
}

// A daemon stopped in the middle of a request, before the endpoint answered, leaves the
// event pending; the next daemon on the Redis delivers it.
func TestAnEventADaemonWasSendingWhenItStoppedIsDeliveredByAnother(t *testing.T) {
	h := newHarness(t, clock.Real{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			<-r.Context().Done() // the first daemon goes away while this request is open
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ep := endpoint(t, "crm", rc)
	first := h.run("daemon-1", Options{}, ep)
	_, id := h.promise("sales", "+31201234567")
	waitFor(t, "the first daemon is sending", func() bool { return rc.requestsFor(id) == 1 })
	first.stop()
	if n := h.pending("sales", "crm"); n != 1 {
		t.Fatalf("%d events pending after the stop, want the one being sent", n)
	}

	second := h.run("daemon-2", Options{}, ep)
	waitFor(t, "the second daemon delivers it", func() bool { return second.count("crm", ResultDelivered) == 1 })
	waitFor(t, "the event is acknowledged", func() bool { return h.pending("sales", "crm") == 0 })
	if n := rc.requestsFor(id); n != 2 {
		t.Errorf("the endpoint got %d requests for the event, want 2", n)
	}
	if got := first.count("crm", ResultFailed) + second.count("crm", ResultFailed); got != 0 {
		t.Errorf("the stop counted as %v failures", got)
	}
}

// A daemon that died after reading events but before sending them leaves them pending in
// its consumer; another daemon takes them over with XAUTOCLAIM once they have sat idle.
func TestEventsADeadConsumerReadAreTakenOver(t *testing.T) {
	h := newHarness(t, clock.Real{})
	rc := newReceiver(t, answerOK)
	ep := endpoint(t, "crm", rc)
	ctx := context.Background()
	prep, err := New(Options{Redis: h.rdb, Streams: h.store, Instance: "prep", Endpoints: []Endpoint{ep}})
	if err != nil {
		t.Fatal(err)
	}
	if err := prep.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	_, id := h.promise("support", "+31201234567")
	// The dead daemon's read, and nothing after it.
	stream := h.store.EventStreamKey("support")
	if err := h.rdb.XReadGroup(ctx, redisReadArgs{group: GroupPrefix + "crm", consumer: "dead-daemon", stream: stream}.args()).Err(); err != nil {
		t.Fatal(err)
	}

	r := h.run("daemon-2", Options{ClaimIdle: 50 * time.Millisecond}, ep)
	waitFor(t, "the event is delivered", func() bool { return r.count("crm", ResultDelivered) == 1 })
	waitFor(t, "the event is acknowledged", func() bool { return h.pending("support", "crm") == 0 })
	if n := rc.requestsFor(id); n != 1 {
		t.Errorf("the endpoint got %d requests, want 1", n)
	}
}

// Two daemons on one Redis share every stream: each event reaches the endpoint once.
func TestTwoDaemonsDeliverEachEventOnce(t *testing.T) {
	h := newHarness(t, clock.Real{})
	rc := newReceiver(t, answerOK)
	ep := endpoint(t, "crm", rc)
	a := h.run("daemon-1", Options{}, ep)
	b := h.run("daemon-2", Options{}, ep)

	var ids []string
	for i := range 40 {
		_, id := h.promise(testQueues[i%2], fmt.Sprintf("+312012345%02d", i))
		ids = append(ids, id)
	}
	waitFor(t, "every event is delivered", func() bool {
		return a.count("crm", ResultDelivered)+b.count("crm", ResultDelivered) >= float64(len(ids))
	})
	waitFor(t, "every event is acknowledged", func() bool { return h.pending("sales", "crm")+h.pending("support", "crm") == 0 })
	for _, id := range ids {
		if n := rc.requestsFor(id); n != 1 {
			t.Errorf("%s reached the endpoint %d times", id, n)
		}
	}
	if n := len(rc.requests()); n != len(ids) {
		t.Errorf("the endpoint got %d requests for %d events", n, len(ids))
	}
}

// Events of types the endpoint does not take are acknowledged without a request.
func TestEventsTheEndpointDoesNotTakeAreSkipped(t *testing.T) {
	h := newHarness(t, clock.NewFake(start))
	rc := newReceiver(t, answerOK)
	ep := endpoint(t, "crm", rc)
	ep.Events = []queue.EventType{queue.EventKept, queue.EventLate}
	r := h.run("daemon-1", Options{}, ep)

	h.promise("sales", "+31201234567")
	evs := h.keep("sales") // claimed, customer_dialled, connected, kept
	kept := evs[len(evs)-1].ID
	waitFor(t, "every event is finished", func() bool {
		return r.count("crm", ResultDelivered) == 1 && r.count("crm", ResultSkipped) == 4 && h.pending("sales", "crm") == 0
	})
	if got := rc.requests(); len(got) != 1 || got[0].ID != kept {
		t.Errorf("requests %+v, want only the kept event", got)
	}
}

// The lag is the age of the oldest event the endpoint has not had, and 0 once it has all.
func TestLagIsTheAgeOfTheOldestUndeliveredEvent(t *testing.T) {
	clk := clock.NewFake(start)
	h := newHarness(t, clk)
	up := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		select {
		case <-up:
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	r := h.run("daemon-1", Options{Backoff: time.Second, MaxBackoff: time.Second}, endpoint(t, "crm", rc))
	h.promise("sales", "+31201234567")
	waitFor(t, "a failed attempt", func() bool { return r.count("crm", ResultFailed) >= 1 })
	clk.Advance(90 * time.Second)
	waitFor(t, "the lag shows the event's age", func() bool { return r.lag("crm") == 90 })
	close(up)
	waitFor(t, "the event is delivered on its retry", func() bool {
		clk.Advance(100 * time.Millisecond) // towards the retry's time
		return r.count("crm", ResultDelivered) == 1
	})
	waitFor(t, "the lag is back to 0", func() bool { return r.lag("crm") == 0 })
}

func TestFullJitterDoublesItsCeilingUpToTheMost(t *testing.T) {
	highest := func(n int64) int64 { return n - 1 } // the top of the draw
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second},
		{7, time.Minute}, {60, time.Minute},
	}
	for _, tc := range tests {
		if got := fullJitter(tc.attempt, time.Second, time.Minute, highest); got != tc.want {
			t.Errorf("after attempt %d: at most %s, want %s", tc.attempt, got, tc.want)
		}
	}
	if got := fullJitter(3, time.Second, time.Minute, func(int64) int64 { return 0 }); got <= 0 {
		t.Errorf("the shortest wait is %s, want it above 0", got)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	h := newHarness(t, clock.Real{})
	good := Endpoint{Name: "crm", URL: "https://crm.example/hook", Key: make([]byte, 32), RetryFor: time.Hour, Timeout: time.Second}
	tests := []struct {
		name string
		edit func(o *Options)
		want string
	}{
		{"no instance", func(o *Options) { o.Instance = "" }, "an instance name"},
		{"a URL that is not http", func(o *Options) { o.Endpoints[0].URL = "ftp://crm.example" }, `endpoint "crm": the URL must be`},
		{"a short key", func(o *Options) { o.Endpoints[0].Key = []byte("short") }, "at least 24 bytes"},
		{"an unknown event type", func(o *Options) { o.Endpoints[0].Events = []queue.EventType{"promise_kept"} }, "promise_kept"},
		{"one name twice", func(o *Options) { o.Endpoints = append(o.Endpoints, o.Endpoints[0]) }, `endpoint "crm" is listed twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Redis: h.rdb, Streams: h.store, Instance: "daemon-1", Endpoints: []Endpoint{good}}
			tc.edit(&o)
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// Erasing a customer deletes their events from the stream; an event of theirs still waiting
// for its retry is then not sent again, and finished as skipped.
func TestAnErasedCustomersWaitingEventIsNotSentAgain(t *testing.T) {
	clk := clock.NewFake(start)
	h := newHarness(t, clk)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusInternalServerError) })
	r := h.run("daemon-1", Options{Backoff: time.Second, MaxBackoff: time.Second}, endpoint(t, "crm", rc))
	_, id := h.promise("sales", "+31201234567")
	waitFor(t, "a failed attempt", func() bool { return r.count("crm", ResultFailed) == 1 })

	if _, err := h.store.EraseCustomer(context.Background(), "+31201234567"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the erased event is finished", func() bool {
		clk.Advance(100 * time.Millisecond) // past its retry time
		return r.count("crm", ResultSkipped) == 1 && h.pending("sales", "crm") == 0
	})
	if n := rc.requestsFor(id); n != 1 {
		t.Errorf("the erased customer's event was sent %d times, want only the attempt before the erasure", n)
	}
}

// commandCounter counts the round trips a client makes to Redis and the commands of one name
// among them, pipelined ones included.
type commandCounter struct {
	name string

	mu           sync.Mutex
	trips, named int
}

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.count(cmds)
		return next(ctx, cmds)
	}
}
func (c *commandCounter) count(cmds []redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips++
	for _, cmd := range cmds {
		if cmd.Name() == c.name {
			c.named++
		}
	}
}
func (c *commandCounter) read() (trips, named int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trips, c.named
}
func (c *commandCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips, c.named = 0, 0
}

// A worker with nothing to deliver looks for work every Poll, for every endpoint and queue, on
// a Redis the rest of the daemon shares: each such look is one round trip (the due retries,
// the events a stopped consumer left, the new events and what the lag gauge needs, together),
// not one per question.
func TestAnIdleWorkerLooksForWorkInOneRoundTrip(t *testing.T) {
	h := newHarness(t, clock.NewFake(start))
	counter := &commandCounter{name: "xreadgroup"}
	h.rdb.AddHook(counter)
	rc := newReceiver(t, answerOK)
	h.run("daemon-1", Options{}, endpoint(t, "crm", rc))
	// The first looks make the groups and forget stopped consumers (hourly); count after them.
	waitFor(t, "the workers to look a few times", func() bool { _, n := counter.read(); return n >= 2*len(testQueues) })
	counter.reset()
	waitFor(t, "twenty idle looks", func() bool { _, n := counter.read(); return n >= 20 })
	trips, looks := counter.read()
	// A look may be under way while the two are read: at most one trip per worker in flight.
	if trips > looks+len(testQueues) {
		t.Errorf("%d round trips for %d idle looks; want one per look", trips, looks)
	}
}

// An event read with others in one batch waits in the daemon's memory while the endpoint takes
// its time with the ones before it; erasing its customer meanwhile must still keep it from
// being sent, on every way an event reaches its first attempt.
func TestAnErasedCustomersEventReadInABatchIsNotSent(t *testing.T) {
	tests := []struct {
		name string
		// read puts the two events where the deliverer will find them: nothing (its own read
		// of new events), or a dead consumer's read it takes over.
		deadReader bool
	}{
		{name: "read as new events"},
		{name: "taken over from a dead consumer", deadReader: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, clock.NewFake(start))
			release := make(chan struct{})
			var releaseOnce sync.Once
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
				select {
				case <-release: // the erasure is done
				case <-r.Context().Done():
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			ep := endpoint(t, "crm", rc)
			ctx := context.Background()
			prep, err := New(Options{Redis: h.rdb, Streams: h.store, Instance: "prep", Endpoints: []Endpoint{ep}})
			if err != nil {
				t.Fatal(err)
			}
			if err := prep.Prepare(ctx); err != nil {
				t.Fatal(err)
			}
			// Both events are in the stream before the deliverer's first read: one batch.
			_, kept := h.promise("sales", "+31201234567")
			_, erased := h.promise("sales", "+31207654321")
			o := Options{}
			if tc.deadReader {
				stream := h.store.EventStreamKey("sales")
				if err := h.rdb.XReadGroup(ctx, redisReadArgs{group: GroupPrefix + "crm", consumer: "dead-daemon", stream: stream}.args()).Err(); err != nil {
					t.Fatal(err)
				}
				o.ClaimIdle = 50 * time.Millisecond
			}
			r := h.run("daemon-1", o, ep)
			waitFor(t, "the first event is being sent", func() bool { return rc.requestsFor(kept) == 1 })
			if _, err := h.store.EraseCustomer(ctx, "+31207654321"); err != nil {
				t.Fatal(err)
			}
			releaseOnce.Do(func() { close(release) })
			waitFor(t, "both events are finished", func() bool {
				return r.count("crm", ResultDelivered)+r.count("crm", ResultSkipped) == 2 && h.pending("sales", "crm") == 0
			})
			if n := rc.requestsFor(erased); n != 0 {
				t.Errorf("the erased customer's event was sent %d times after the erasure", n)
			}
			if got := r.count("crm", ResultSkipped); got != 1 {
				t.Errorf("skipped = %v, want the erased event", got)
			}
		})
	}
}

// What an endpoint answers is not ours to store: a reply that quotes a number, which the HTTP
// client then quotes in its error, must not put that number into the attempt's bookkeeping or
// the dead letters, which the erasure of a customer does not touch.
func TestAFailureDetailKeptInRedisHoldsNoNumber(t *testing.T) {
	tests := []struct {
		name  string
		reply string // raw bytes the endpoint writes instead of an HTTP response
		want  string // in the detail kept, masked
	}{
		{"an answer that is not HTTP", "+31201234567\r\n\r\n", "+31*******67"},
		{"a status code that is a number", "HTTP/1.1 31201234567 Oops\r\n\r\n", "312******67"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewFake(start)
			h := newHarness(t, clk)
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				conn, buf, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				_, _ = buf.WriteString(tc.reply)
				_ = buf.Flush()
				_ = conn.Close()
			})
			ep := endpoint(t, "crm", rc)
			ep.RetryFor = time.Minute
			r := h.run("daemon-1", Options{Backoff: time.Second, MaxBackoff: time.Second}, ep)
			_, id := h.promise("sales", "+31207654321")
			stream := h.store.EventStreamKey("sales")
			streamID := id[len("sales/"):]
			waitFor(t, "a failed attempt", func() bool { return r.count("crm", ResultFailed) >= 1 })
			last, err := h.rdb.HGet(context.Background(), stream+":webhook:crm:attempts", streamID+"/last").Result()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(last, "1234567") || !strings.Contains(last, tc.want) {
				t.Errorf("the attempt's detail %q holds the number, want it masked (%s)", last, tc.want)
			}
			clk.Advance(2 * time.Minute)
			waitFor(t, "the event is dead-lettered", func() bool { return r.count("crm", ResultDeadLettered) == 1 })
			dead, err := h.rdb.XRange(context.Background(), stream+":webhook:crm:dead", "-", "+").Result()
			if err != nil || len(dead) != 1 {
				t.Fatalf("dead letters %v, %v; want one", dead, err)
			}
			for k, v := range dead[0].Values {
				if strings.Contains(v.(string), "1234567") {
					t.Errorf("dead letter field %s holds the number: %v", k, v)
				}
			}
		})
	}
}
