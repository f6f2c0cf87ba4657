package dialer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// benchREST stands in for Asterisk's REST API so the benchmark times callbackd alone: it
// notes when the agent's originate arrives, marks the agent busy as Asterisk would, and
// refuses the call so the promise goes straight back to the queue.
type benchREST struct {
	pool       *Pool
	originated chan time.Time
	trips      *tripCounter
	tripsSeen  []int64 // Redis round trips between the agent freed and each originate
}

// tripCounter counts what reaches Redis: a command or a whole pipeline is one round trip.
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

var errBenchRefused = errors.New("benchmark: originate refused on purpose")

func (r *benchREST) Endpoints(context.Context) ([]ari.Endpoint, error) {
	return []ari.Endpoint{{Technology: "PJSIP", Resource: "1002", State: "online"}}, nil
}
func (r *benchREST) DeviceState(_ context.Context, name string) (ari.DeviceState, error) {
	return ari.DeviceState{Name: name, State: deviceNotInUse}, nil
}
func (r *benchREST) Subscribe(context.Context, string, ...string) error { return nil }
func (r *benchREST) Originate(context.Context, ari.OriginateRequest) (ari.Channel, error) {
	r.tripsSeen = append(r.tripsSeen, r.trips.n.Load())
	r.originated <- time.Now()
	r.pool.HandleEvent(&ari.Event{Type: ari.EventDeviceStateChanged, AsteriskID: "bench",
		DeviceState: &ari.DeviceState{Name: "PJSIP/1002", State: "INUSE"}})
	return ari.Channel{}, errBenchRefused
}
func (r *benchREST) CreateChannel(context.Context, ari.CreateRequest) (ari.Channel, error) {
	return ari.Channel{}, errBenchRefused
}
func (r *benchREST) Dial(context.Context, string, string, time.Duration) error {
	return errBenchRefused
}
func (r *benchREST) Hangup(context.Context, string, string) error { return nil }
func (r *benchREST) Play(context.Context, string, string, []string) (ari.Playback, error) {
	return ari.Playback{}, errBenchRefused
}
func (r *benchREST) Channels(context.Context) ([]ari.Channel, error) { return nil, nil }
func (r *benchREST) Channel(context.Context, string) (ari.Channel, error) {
	return ari.Channel{}, errBenchRefused
}
func (r *benchREST) Playback(context.Context, string) (ari.Playback, error) {
	return ari.Playback{}, errBenchRefused
}
func (r *benchREST) CreateBridge(context.Context, string, string) (ari.Bridge, error) {
	return ari.Bridge{}, errBenchRefused
}
func (r *benchREST) AddChannel(context.Context, string, string) error { return errBenchRefused }
func (r *benchREST) DestroyBridge(context.Context, string) error      { return nil }

type benchPBXs struct{ rest REST }

func (p benchPBXs) PBX(string) (PBX, bool) {
	return PBX{ID: "bench", Name: "bench", REST: p.rest, MonitorApp: "m", ControlApp: "c"}, true
}

// BenchmarkAgentFreeToOriginate measures what design §Dispatch promises an agent: from the
// event that frees the agent to the originate request that rings them, with 100 000 open
// promises in a real redis-server. One op is one such hand-over: wake, head of the queue,
// reservation, EDF claim, device re-check, originate.
func BenchmarkAgentFreeToOriginate(b *testing.B) {
	for _, open := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("open=%d", open), func(b *testing.B) { benchFreeToOriginate(b, open) })
	}
}

func benchFreeToOriginate(b *testing.B, open int) {
	cfg, err := config.Parse([]byte(`
asterisk: [{name: pbx, url: "http://127.0.0.1:1/ari", username: u, password: p}]
queues:
  - name: support
    calling_hours: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "23:59"}
agents: [{id: bob, endpoint: PJSIP/1002, extension: "1002", queues: [support]}]
dialer:
  customer_dial_template: PJSIP/{number}@provider
  caller_id: {number: "+31205550100"}
  agent_cooldown: 0s
  allow: ['\+31[0-9]{9}']
`), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	srv := redistest.Start(b, redistest.Options{})
	rdb := srv.Client()
	trips := &tripCounter{}
	rdb.AddHook(trips)
	clk := clock.Real{}
	store, err := queue.New(rdb, queue.Options{Clock: clk, Queues: []string{"support"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fillQueue(b, store, open)

	policy := PolicyFrom(cfg)
	pool := NewPool(policy.Agents, clk, nil)
	rest := &benchREST{pool: pool, originated: make(chan time.Time, 1), trips: trips}
	// Start busy, so the first hand-over is timed like every other.
	pool.HandleEvent(&ari.Event{Type: ari.EventDeviceStateChanged, AsteriskID: "bench",
		DeviceState: &ari.DeviceState{Name: "PJSIP/1002", State: "INUSE"}})
	if err := pool.Refresh(ctx, "bench", "m", rest); err != nil {
		b.Fatal(err)
	}
	disp, err := NewDispatcher(DispatcherOptions{Policy: policy, Store: store,
		Reservations: queue.NewReservations(rdb, "callbackd"), Pool: pool, Control: NewControl(),
		PBXs: benchPBXs{rest}, Clock: clk, Instance: "bench", Rescan: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = disp.Run(ctx) }()

	free := &ari.Event{Type: ari.EventDeviceStateChanged, AsteriskID: "bench",
		DeviceState: &ari.DeviceState{Name: "PJSIP/1002", State: deviceNotInUse}}
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		trips.n.Store(0)
		pool.HandleEvent(free)
		rang := <-rest.originated
		total += rang.Sub(start)
		b.StopTimer()
		for disp.Active() > 0 { // the refused call hands its promise back
			time.Sleep(20 * time.Microsecond)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/free-to-originate")
	var sum int64
	for _, n := range rest.tripsSeen {
		sum += n
	}
	b.ReportMetric(float64(sum)/float64(len(rest.tripsSeen)), "redis-trips/free-to-originate")
	cancel()
	<-done
}

// fillQueue makes n open promises with distinct numbers and deadlines, eight writers at once.
func fillQueue(b *testing.B, store *queue.Store, n int) {
	b.Helper()
	ctx := context.Background()
	if err := store.Load(ctx); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				_, _, err := store.Enqueue(ctx, queue.Request{Queue: "support", Number: fmt.Sprintf("+31%09d", 100000000+i),
					Reason: queue.ReasonVoicemail, Target: "1003", Deadline: now.Add(time.Hour + time.Duration(i)*time.Millisecond),
					NotBefore: now, MaxAttempts: 3})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}
