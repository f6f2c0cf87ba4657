package dialer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// rig is a dispatcher wired as in production — a fake Asterisk over HTTP/WebSocket, a real
// ari.Conn, a real redis-server — on a fake clock that runs fast, so a callback's minutes of
// ringing and talking pass in milliseconds of wall time.
type rig struct {
	t       *testing.T
	cfg     *config.Config
	clk     *clock.Fake
	pbx     *aritest.Server
	redis   *redistest.Server
	store   *queue.Store
	pool    *Pool
	control *Control
	disp    *Dispatcher
	conn    *ari.Conn
	janitor *Janitor
	// crash kills the current daemon as kill -9 would: no hang-up, no store write.
	crash func()
	// cut, while true, keeps the current daemon's promise store from reaching Redis (a network
	// partition of this daemon alone: another daemon's store still does).
	cut atomic.Bool
	// gap, while true, keeps the current daemon's events socket from connecting (REST still
	// gets through): with pbx.DropWebSockets, a socket gap as long as the test needs.
	gap atomic.Bool
	// listings counts the current daemon's callbacks' listings of every channel on the PBX.
	listings atomic.Int64

	mu       sync.Mutex
	progress []Progress
	requests []string // REST requests the fake Asterisk received
}

// rigConfig is a complete config for one fake Asterisk; tests change what they need.
const rigConfig = `
asterisk:
  - {name: pbx, url: "http://127.0.0.1:1/ari", username: callbackd, password: callbackd-secret}
queues:
  - name: support
    deadline: {voicemail: 2h, unanswered_transfer: 1h}
    max_attempts: 3
    retry_backoff: 5m
    owner_preference: 0.5
    calling_hours: {timezone: Europe/Amsterdam, days: [mon, tue, wed, thu, fri], start: "08:30", end: "17:30"}
agents:
  - {id: bob, endpoint: PJSIP/1002, extension: "1002", queues: [support]}
  - {id: anna, endpoint: PJSIP/1003, extension: "1003", queues: [support]}
dialer:
  customer_dial_template: PJSIP/{number}@provider
  caller_id: {number: "+31205550100", name: Acme}
  agent_ring_timeout: 15s
  customer_ring_timeout: 20s
  agent_cooldown: 2m
  wrap_up: 30s
  lease: 30s
  whisper: ["sound:callbackd-callback-for", "digits:{number}"]
`

// monday10 is a Monday 10:00 in Amsterdam: calling hours are open.
var monday10 = time.Date(2026, 11, 23, 10, 0, 0, 0, mustLoc("Europe/Amsterdam"))

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// rigPBXs is the dispatcher's view of the rig's one Asterisk. listings, when set, counts the
// callbacks' listings of every channel (the janitor and the resyncs list them through paths of
// their own).
type rigPBXs struct {
	conn     *ari.Conn
	listings *atomic.Int64
}

func (p rigPBXs) PBX(id string) (PBX, bool) {
	if id != p.conn.AsteriskID() {
		return PBX{}, false
	}
	var rest REST = p.conn.Client()
	if p.listings != nil {
		rest = countedListings{REST: rest, n: p.listings}
	}
	return PBX{ID: id, Name: "pbx", REST: rest, MonitorApp: "callbackd-monitor", ControlApp: "callbackd"}, true
}

// countedListings counts the calls of Channels.
type countedListings struct {
	REST
	n *atomic.Int64
}

func (c countedListings) Channels(ctx context.Context) ([]ari.Channel, error) {
	c.n.Add(1)
	return c.REST.Channels(ctx)
}

// newRig starts everything at start; edit changes the parsed config before use, phones
// scripts the endpoints. The daemon (instance "test") runs until the test ends or crash.
func newRig(t *testing.T, start time.Time, edit func(*config.Config), phones func(*aritest.Server)) *rig {
	t.Helper()
	r := &rig{t: t, clk: clock.NewFake(start)}
	cfg, err := config.Parse([]byte(rigConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("rig config: %v", err)
	}
	if edit != nil {
		edit(cfg)
	}
	r.cfg = cfg
	r.pbx, err = aritest.New(aritest.Options{Clock: r.clk, Logf: func(format string, args ...any) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests = append(r.requests, fmt.Sprintf(format, args...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.pbx.Close)
	if phones != nil {
		phones(r.pbx)
	}
	r.redis = redistest.Start(t, redistest.Options{})
	stopDrive := make(chan struct{})
	driven := make(chan struct{})
	go func() { defer close(driven); aritest.Drive(r.clk, 50*time.Millisecond, stopDrive, time.Minute) }()
	t.Cleanup(func() { close(stopDrive); <-driven })
	r.boot("test")
	return r
}

// boot starts a daemon's dispatcher, pool, control, janitor and ARI connection on the rig's
// fake Asterisk and Redis, as instance, and makes it the rig's current daemon.
func (r *rig) boot(instance string) {
	t, cfg := r.t, r.cfg
	dead := &atomic.Bool{}
	rdb := r.redis.Client()
	policy := PolicyFrom(cfg)
	store := r.newStore(rdb)
	ctx, cancel := context.WithCancel(context.Background())
	var disp *Dispatcher
	woken := func(_ string, up bool) {
		if up && disp != nil {
			disp.Wake() // as the daemon does: agents held back while it was down may be rung
		}
	}
	conn := r.newConn(&http.Client{Transport: mortal{dead: dead, gap: &r.gap, next: http.DefaultTransport}}, woken)
	control := NewControl()
	pool := NewPool(policy.Agents, r.clk, nil)
	pbxs := rigPBXs{conn: conn, listings: &r.listings}
	disp, err := NewDispatcher(DispatcherOptions{Policy: policy, Store: partitioned{Promises: store, cut: &r.cut},
		Reservations: queue.NewReservations(rdb, "callbackd"), Pool: pool, Control: control,
		PBXs: pbxs, Clock: r.clk, Instance: instance, Wakeups: store.Wakeups,
		Claimable: func(id string) bool { return id == conn.AsteriskID() && conn.Connected() },
		OnProgress: func(p Progress) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.progress = append(r.progress, p)
		}})
	if err != nil {
		t.Fatal(err)
	}
	janitor := r.newJanitor(store, conn, control, instance)
	r.store, r.conn, r.control, r.pool, r.disp, r.janitor = store, conn, control, pool, disp, janitor
	var wg sync.WaitGroup
	wg.Add(4)
	go func() {
		defer wg.Done()
		_ = conn.Run(ctx, ari.Handlers{pool, janitor.Monitor()}, ari.Handlers{control, janitor})
	}()
	go func() { defer wg.Done(); _ = pool.Run(ctx, pbxs) }()
	go func() { defer wg.Done(); _ = disp.Run(ctx) }()
	go func() { defer wg.Done(); _ = janitor.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	r.crash = func() {
		// No REST request, no socket and no Redis write of this daemon gets through from
		// here on: what it leaves on the PBX and in Redis stays as it was.
		dead.Store(true)
		_ = rdb.Close()
		r.pbx.DropWebSockets()
		stop()
	}
	r.waitFor("the agents to be known", func() bool { return len(pool.Free()) > 0 || r.countState(AgentOffline) < len(cfg.Agents) })
}

// newStore is a promise store on rdb, loaded, as a daemon on the rig's config has it.
func (r *rig) newStore(rdb *redis.Client) *queue.Store {
	r.t.Helper()
	store, err := queue.New(rdb, queue.Options{Clock: r.clk, Queues: PolicyFrom(r.cfg).QueueNames(), Retention: r.cfg.Retention.D()})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := store.Load(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	return store
}

// newConn is an ARI connection to the rig's Asterisk under the daemon's application names,
// through client, with the config's reconnect delays; onState hears it go up and down.
func (r *rig) newConn(client *http.Client, onState func(string, bool)) *ari.Conn {
	r.t.Helper()
	rc := r.cfg.Asterisk[0].Reconnect
	conn, err := ari.NewConn(ari.Options{Name: "pbx", URL: r.pbx.URL() + "/ari", Username: "callbackd", OnState: onState,
		Password: "callbackd-secret", MonitorApp: "callbackd-monitor", ControlApp: "callbackd", Clock: r.clk,
		HTTPClient: client,
		Backoff:    ari.Backoff{Initial: rc.Initial.D(), Max: rc.Max.D(), Multiplier: ari.DefaultBackoff.Multiplier}})
	if err != nil {
		r.t.Fatal(err)
	}
	return conn
}

// newJanitor is the janitor of daemon instance, on store and conn.
func (r *rig) newJanitor(store *queue.Store, conn *ari.Conn, control *Control, instance string) *Janitor {
	r.t.Helper()
	policy := PolicyFrom(r.cfg)
	janitor, err := NewJanitor(JanitorOptions{Promises: store, Queues: policy.QueueNames(), Instance: instance,
		Lease: policy.Calls.Lease, ConfirmDigit: policy.ConfirmDigit, ControlApps: []string{"callbackd"},
		Control: control, Clock: r.clk, PBX: func(id string) (JanitorREST, bool) {
			return conn.Client(), id == conn.AsteriskID()
		}})
	if err != nil {
		r.t.Fatal(err)
	}
	return janitor
}

// mortal is an HTTP transport that fails every request once its daemon died, and the events
// socket's handshake during a gap.
type mortal struct {
	dead, gap *atomic.Bool
	next      http.RoundTripper
}

func (m mortal) RoundTrip(req *http.Request) (*http.Response, error) {
	if m.dead.Load() {
		return nil, errors.New("this daemon was killed")
	}
	if m.gap.Load() && strings.HasSuffix(req.URL.Path, "/events") {
		return nil, errors.New("the events socket cannot connect: a gap")
	}
	return m.next.RoundTrip(req)
}

// socketGap drops the daemon's events socket and keeps it down until over says so: whatever
// Asterisk emits meanwhile is lost to the daemon, as in a reconnect gap.
func (r *rig) socketGap(over func() bool) {
	r.t.Helper()
	r.gap.Store(true)
	r.pbx.DropWebSockets()
	r.waitFor("the end of the socket gap", over)
	r.gap.Store(false)
}

func (r *rig) countState(state string) int { return r.pool.Count()[state] }

// waitFor polls cond with a generous wall-clock guard; it asserts nothing about speed.
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("gave up waiting for %s\nprogress:\n%s", what, r.story())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// enqueue makes a promise as the intake would, and wakes the dispatcher.
func (r *rig) enqueue(number, reason, target string, deadline time.Duration) queue.Job {
	r.t.Helper()
	now := r.clk.Now()
	j, _, err := r.store.Enqueue(context.Background(), queue.Request{Queue: "support", Number: number, Reason: queue.Reason(reason),
		Target: target, Deadline: now.Add(deadline), NotBefore: now, MaxAttempts: 3})
	if err != nil {
		r.t.Fatalf("enqueue %s: %v", number, err)
	}
	r.disp.Wake()
	return j
}

// settled waits until the promise is finished and returns it.
func (r *rig) settled(id string) queue.Job {
	r.t.Helper()
	var j queue.Job
	r.waitFor("promise "+id+" to finish", func() bool {
		var err error
		j, err = r.store.Get(context.Background(), queue.Ref{Queue: "support", ID: id})
		return err == nil && !j.State.Open()
	})
	// The dispatcher reports its last step right after writing the outcome.
	r.waitFor("the callback of "+id+" to report its end", func() bool {
		for _, p := range r.allProgress() {
			if p.Job.ID == id && (p.Step == StepSettled && !p.State.Open() || p.Step == StepTakenAway) {
				return true
			}
		}
		return false
	})
	return j
}

func (r *rig) steps(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.progress {
		if p.Job.ID == id {
			s := p.Agent + " " + p.Step
			if p.Step == StepSettled {
				s += " " + string(p.State) + " " + p.AgentResult + "/" + p.CustomerResult
			}
			out = append(out, s)
		}
	}
	return out
}

func (r *rig) allProgress() []Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Progress(nil), r.progress...)
}

func (r *rig) story() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, p := range r.progress {
		b.WriteString(p.At.Format("15:04:05") + " " + p.Job.ID + " " + p.Agent + " " + p.Step + " " + p.Detail + " " + string(p.State) + "\n")
	}
	return b.String()
}

// requested reports the REST requests whose line contains all of parts.
func (r *rig) requested(parts ...string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
next:
	for _, line := range r.requests {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}
