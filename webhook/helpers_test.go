package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

var testQueues = []string{"sales", "support"}

// start is the moment fake clocks stand at.
var start = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// request is one request a receiver got.
type request struct {
	ID, Timestamp, Signature, ContentType string
	Body                                  []byte
}

// receiver is a real HTTP endpoint that records every request before answer decides what
// it gets; n counts the requests for that webhook-id, from 1.
type receiver struct {
	srv    *httptest.Server
	answer func(w http.ResponseWriter, r *http.Request, n int)

	mu  sync.Mutex
	got []request
}

func newReceiver(t testing.TB, answer func(w http.ResponseWriter, r *http.Request, n int)) *receiver {
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := request{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"),
			Signature: r.Header.Get("webhook-signature"), ContentType: r.Header.Get("Content-Type"), Body: b}
		rc.mu.Lock()
		rc.got = append(rc.got, req)
		n := 0
		for _, g := range rc.got {
			if g.ID == req.ID {
				n++
			}
		}
		rc.mu.Unlock()
		rc.answer(w, r, n)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func answerOK(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusNoContent) }

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

// requestsFor counts the requests that carried webhook-id id.
func (rc *receiver) requestsFor(id string) int {
	n := 0
	for _, r := range rc.requests() {
		if r.ID == id {
			n++
		}
	}
	return n
}

// harness is one Redis with its promise store, shared by the deliverers of a test.
type harness struct {
	t     testing.TB
	rdb   *redis.Client
	store *queue.Store
	clk   clock.Clock
}

func newHarness(t testing.TB, clk clock.Clock) *harness {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	store, err := queue.New(rdb, queue.Options{Queues: testQueues, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, rdb: rdb, store: store, clk: clk}
}

func testKey(t testing.TB) []byte {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func endpoint(t testing.TB, name string, rc *receiver) Endpoint {
	return Endpoint{Name: name, URL: rc.srv.URL + "/hooks/callbackd?token=t0ps3cret", Key: testKey(t),
		RetryFor: time.Hour, Timeout: 5 * time.Second}
}

// running is a deliverer started by a test, with what it counts.
type running struct {
	d      *Deliverer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

// run starts a deliverer as daemon instance on h's Redis; its groups exist when it returns.
func (h *harness) run(instance string, o Options, endpoints ...Endpoint) *running {
	h.t.Helper()
	reg := prometheus.NewRegistry()
	o.Redis, o.Streams, o.Instance, o.Clock, o.Registerer, o.Endpoints = h.rdb, h.store, instance, h.clk, reg, endpoints
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Poll == 0 {
		o.Poll = 20 * time.Millisecond
	}
	if o.Backoff == 0 {
		o.Backoff, o.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	d, err := New(o)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Prepare(ctx); err != nil {
		h.t.Fatal(err)
	}
	r := &running{d: d, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = d.Run(ctx)
	}()
	h.t.Cleanup(r.stop)
	return r
}

// stop ends the deliverer like a daemon's shutdown and waits until it has.
func (r *running) stop() {
	r.cancel()
	<-r.done
}

// count is callbackd_webhook_deliveries_total{endpoint,result} as the registry exports it.
func (r *running) count(endpoint, result string) float64 {
	m := r.metric("callbackd_webhook_deliveries_total", map[string]string{"endpoint": endpoint, "result": result})
	return m.GetCounter().GetValue()
}

// lag is callbackd_webhook_lag_seconds{endpoint} as the registry exports it.
func (r *running) lag(endpoint string) float64 {
	return r.metric("callbackd_webhook_lag_seconds", map[string]string{"endpoint": endpoint}).GetGauge().GetValue()
}

func (r *running) metric(name string, labels map[string]string) *dto.Metric {
	mfs, err := r.reg.Gather()
	if err != nil {
		panic(err) // a registry that cannot gather is a broken test
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m
		}
	}
	panic(fmt.Sprintf("no %s%v exported", name, labels))
}

// promise makes a promise in queue q for number, through the store: its "made" event is in
// the stream when this returns. It returns the promise and that event's webhook-id.
func (h *harness) promise(q, number string) (queue.Job, string) {
	h.t.Helper()
	ctx := context.Background()
	before, err := h.store.EventsNow(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	j, _, err := h.store.Enqueue(ctx, queue.Request{Queue: q, Number: number, Name: "Customer", Reason: queue.ReasonVoicemail,
		Target: "201", Deadline: h.clk.Now().Add(4 * time.Hour), MaxAttempts: 3,
		Source: queue.Source{AsteriskID: "pbx1", LinkedID: "1700000000.1", Channel: "PJSIP/trunk-00000001"}})
	if err != nil {
		h.t.Fatal(err)
	}
	evs := h.eventsAfter(before)
	if len(evs) != 1 || evs[0].Type != queue.EventMade {
		h.t.Fatalf("making a promise wrote the events %+v, want one made", evs)
	}
	return j, evs[0].ID
}

// keep takes queue q's next promise through a callback that keeps it: claimed,
// customer_dialled, connected, kept. It returns the events written.
func (h *harness) keep(q string) []queue.Event {
	h.t.Helper()
	ctx := context.Background()
	before, err := h.store.EventsNow(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	j, err := h.store.Claim(ctx, q, queue.ClaimOptions{Worker: "daemon-x/201", Lease: time.Minute})
	if err != nil {
		h.t.Fatal(err)
	}
	token := j.Lease.Token
	if _, err := h.store.MarkDialled(ctx, j.Ref(), token); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.store.MarkConnected(ctx, j.Ref(), token, h.clk.Now()); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.store.Complete(ctx, j.Ref(), token, queue.StateKept, "talked"); err != nil {
		h.t.Fatal(err)
	}
	return h.eventsAfter(before)
}

func (h *harness) eventsAfter(c queue.Cursor) []queue.Event {
	h.t.Helper()
	evs, _, err := h.store.ReadEvents(context.Background(), c, 1000, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

// pending is how many of queue q's events endpoint has not finished.
func (h *harness) pending(q, endpoint string) int64 {
	h.t.Helper()
	p, err := h.rdb.XPending(context.Background(), h.store.EventStreamKey(q), GroupPrefix+endpoint).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	return p.Count
}

// waitFor waits until cond holds; the limit only keeps a broken test from hanging, it
// measures nothing.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wall := clock.Real{}
	deadline := wall.Now().Add(30 * time.Second)
	for !cond() {
		if wall.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// redisReadArgs is one XREADGROUP of new entries by a consumer, as a daemon's read.
type redisReadArgs struct{ group, consumer, stream string }

func (a redisReadArgs) args() *redis.XReadGroupArgs {
	return &redis.XReadGroupArgs{Group: a.group, Consumer: a.consumer, Streams: []string{a.stream, ">"}, Count: 10, Block: -1}
}
