package daemon_test

// Active-active on one Asterisk (issue 11): daemons side by side, each with Stasis
// applications of its own, one Redis.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// sideBySideConfig: one agent, Bob, so that one daemon at a time calls with him; calling
// hours always open; a short lease, so a killed daemon's claim runs out soon.
const sideBySideConfig = `
asterisk:
  - name: pbx
    url: http://127.0.0.1:1/ari
    username: callbackd
    password: callbackd-secret
    reconnect: {initial: 500ms, max: 20s}
queues:
  - name: support
    deadline: {voicemail: 2h, unanswered_transfer: 1h}
    calling_hours: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "23:59"}
agents:
  - {id: bob, endpoint: PJSIP/1002, extension: "1002", queues: [support]}
dialer:
  customer_dial_template: PJSIP/{number}@provider
  caller_id: {number: "+31205550100", name: Acme}
  allow: ['\+31[1-9][0-9]{8}']
  agent_ring_timeout: 15s
  customer_ring_timeout: 25s
  whisper: ["digits:{number}"]
  lease: 30s
  shutdown_grace: 1s
`

const customer = "+31201234501"

// sideBySide is one daemon of several on the fake Asterisk.
type sideBySide struct {
	d       *daemon.Daemon
	http    *httptest.Server
	store   *queue.Store
	monitor string // its application names
	control string
	dead    *atomic.Bool
	rdb     *redis.Client
	cancel  context.CancelFunc
	ran     chan error

	mu     sync.Mutex
	states []state     // its connection's ups and downs, on the simulated clock
	rung   []time.Time // when it rang an agent
}

type state struct {
	at time.Time
	up bool
}

// startSideBySide builds and runs a daemon with instance_id id (worker name worker) on pbx
// and the Redis rs; edit changes its config.
func startSideBySide(t *testing.T, pbx *aritest.Server, clk clock.Clock, rs *redistest.Server, id, worker string, edit func(*config.Config)) *sideBySide {
	t.Helper()
	cfg, err := config.Parse([]byte(sideBySideConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	cfg.InstanceID = id
	if edit != nil {
		edit(cfg)
	}
	s := &sideBySide{dead: &atomic.Bool{}, rdb: rs.Client(), ran: make(chan error, 1),
		monitor: "callbackd-monitor-" + id, control: "callbackd-" + id}
	s.d, err = daemon.New(daemon.Options{Config: cfg, Redis: s.rdb, Clock: clk, Logger: zap.NewNop(), Instance: worker, Listen: "-",
		ARIClient: &http.Client{Transport: mortal{dead: s.dead, next: http.DefaultTransport}},
		OnARI: func(_ string, up bool) {
			s.mu.Lock()
			s.states = append(s.states, state{clk.Now(), up})
			s.mu.Unlock()
		},
		OnProgress: func(p dialer.Progress) {
			if p.Step == dialer.StepAgentRung {
				s.mu.Lock()
				s.rung = append(s.rung, p.At)
				s.mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	s.store = s.d.Store()
	s.http = serve(t, s.d)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.ran <- s.d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-s.ran })
	return s
}

// ready reports whether /readyz answers 200.
func (s *sideBySide) ready(t *testing.T) bool {
	code, _ := get(t, s.http, "GET", "/readyz", "")
	return code == 200
}

func (s *sideBySide) times() (states []state, rung []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]state(nil), s.states...), append([]time.Time(nil), s.rung...)
}

// upAt reports whether the connection was up at t by the last change at or before it.
func upAt(states []state, t time.Time) bool {
	up := false
	for _, st := range states {
		if st.at.After(t) {
			break
		}
		up = st.up
	}
	return up
}

// kill ends the daemon as kill -9 would: its sockets vanish, and no REST request and no Redis
// write of it gets through from then on, its shutdown included.
func (s *sideBySide) kill(pbx *aritest.Server) {
	s.dead.Store(true)
	_ = s.rdb.Close()
	pbx.DropApps(s.monitor, s.control)
	s.cancel()
	s.ran <- <-s.ran // the cleanup waits for Run once more
}

// mortal is an HTTP transport that fails every request once its daemon died.
type mortal struct {
	dead *atomic.Bool
	next http.RoundTripper
}

func (m mortal) RoundTrip(req *http.Request) (*http.Response, error) {
	if m.dead.Load() {
		return nil, errors.New("this daemon was killed")
	}
	return m.next.RoundTrip(req)
}

// channel returns what the fake Asterisk lists for channel id.
func channel(pbx *aritest.Server, id string) (ari.Channel, bool) {
	for _, ch := range pbx.Channels() {
		if ch.ID == id {
			return ch, true
		}
	}
	return ari.Channel{}, false
}

func bridgeListed(pbx *aritest.Server, id string) bool {
	for _, b := range pbx.Bridges() {
		if b.ID == id {
			return true
		}
	}
	return false
}

// Two daemons with their own instance ids on one Asterisk and one Redis: both see the
// customer's call, which makes one promise; the daemon that calls back gets its legs' events
// and the other none; killed while the agent and the customer talk, it leaves the
// conversation to the other, which lets it go on and ends it when the customer hangs up.
func TestTwoDaemonsOnOneAsteriskEachWithItsOwnApps(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	pbx.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
	pbx.SetEndpoint("PJSIP/"+customer+"@provider", aritest.Answers(3*time.Second)) // and talks until hung up
	rs := redistest.Start(t, redistest.Options{})
	a := startSideBySide(t, pbx, clk, rs, "a", "worker-a", nil)
	b := startSideBySide(t, pbx, clk, rs, "b", "worker-b", nil)
	daemontest.WaitUntil(t, "both daemons ready", func() bool { return a.ready(t) && b.ready(t) })
	for _, app := range []string{"callbackd-monitor-a", "callbackd-a", "callbackd-monitor-b", "callbackd-b"} {
		if !pbx.Connected(app) {
			t.Errorf("application %s is not registered; every daemon registers its own", app)
		}
	}

	// The customer rings 1003, nobody answers, and leaves a voicemail.
	call := pbx.Inbound(aritest.InboundCall{From: customer, To: "+31205550103", Steps: []aritest.Step{
		aritest.Dial("PJSIP/1003", 10*time.Second, ""),
		aritest.VoiceMail("1003@default", 3*time.Second),
	}})
	daemontest.WaitUntil(t, "both daemons to follow the call", func() bool {
		return a.d.Backlog().OpenCalls == 1 && b.d.Backlog().OpenCalls == 1
	})
	if err := call.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}

	// One promise; Bob calls back through one of the daemons, and the customer answers.
	var job queue.Job
	daemontest.WaitUntil(t, "the customer to talk to bob", func() bool {
		jobs, err := a.store.List(context.Background(), "support", queue.ListOptions{})
		if err != nil || len(jobs) != 1 || jobs[0].State != queue.StateConnected {
			return false
		}
		job = jobs[0]
		return true
	})
	owner, other := a, b
	if strings.HasPrefix(job.Lease.Worker, "worker-b/") {
		owner, other = b, a
	}
	agentLeg, custLeg, bridge := ari.CallbackIDs(job.ID, job.Lease.Token)
	for _, leg := range []string{agentLeg, custLeg} {
		ch, ok := channel(pbx, leg)
		if !ok || ari.StasisApp(&ch) != owner.control {
			t.Errorf("leg %s is in Stasis(%s); want the calling daemon's control app %s", leg, ari.StasisApp(&ch), owner.control)
		}
	}
	if n := pbx.Delivered(other.control); n != 0 {
		t.Errorf("the other daemon's control app got %d events; a callback's events go to its own daemon only", n)
	}
	if n := pbx.Delivered(owner.control); n == 0 {
		t.Error("the calling daemon's control app got no events of its callback")
	}

	// The calling daemon is killed while they talk.
	owner.kill(pbx)
	daemontest.WaitUntil(t, "the other daemon to adopt the conversation", func() bool { return other.d.Adopted() == 1 })
	for _, leg := range []string{agentLeg, custLeg} {
		if ch, ok := channel(pbx, leg); !ok || ch.State != "Up" {
			t.Errorf("leg %s is %+v after the adoption; the conversation must go on", leg, ch)
		}
	}

	pbx.Hangup(custLeg, 16)
	daemontest.WaitUntil(t, "the agent's leg and the bridge to go", func() bool {
		_, agentLeft := channel(pbx, agentLeg)
		return !agentLeft && !bridgeListed(pbx, bridge)
	})
	var got queue.Job
	daemontest.WaitUntil(t, "the promise to be finished", func() bool {
		var err error
		got, err = other.store.Get(context.Background(), job.Ref())
		return err == nil && !got.State.Open()
	})
	if got.State != queue.StateKept {
		t.Errorf("promise %s; want kept", got.State)
	}
	outcomes, err := other.store.Outcomes(context.Background(), "support", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if outcomes[queue.StateKept] != 1 {
		t.Errorf("outcomes %v; want the promise kept exactly once", outcomes)
	}
	if chans, bridges := pbx.Channels(), pbx.Bridges(); len(chans) > 0 || len(bridges) > 0 {
		t.Errorf("left on the PBX: channels %v, bridges %v", chans, bridges)
	}
	if other.d.Adopted() != 0 {
		t.Errorf("the surviving daemon still watches %d adopted conversations", other.d.Adopted())
	}
	if !other.ready(t) {
		t.Error("the surviving daemon is not ready")
	}
}

// Two processes with one instance id (a misconfiguration) register the same application
// names. The first is told ApplicationReplaced: it answers /readyz 503 naming the app and
// claims nothing — Bob, whom only it may ring, is not rung while it is deaf — until it takes
// its applications back after reconnect.max; the second is then the one not ready.
func TestTwoProcessesWithOneInstanceIDTakeTheAppsInTurnAndOnlyTheHolderClaims(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	pbx.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
	pbx.SetEndpoint("PJSIP/1003", aritest.Unavailable())
	talks := aritest.Answers(3 * time.Second)
	talks.HangupAfter = time.Minute
	pbx.SetEndpoint("PJSIP/"+customer+"@provider", talks)
	rs := redistest.Start(t, redistest.Options{})
	first := startSideBySide(t, pbx, clk, rs, "x", "worker-1", nil)
	daemontest.WaitUntil(t, "the first process ready", func() bool { return first.ready(t) })
	// The second one's only agent is never reachable: any call with Bob is the first's.
	second := startSideBySide(t, pbx, clk, rs, "x", "worker-2", func(c *config.Config) {
		c.Agents = []config.Agent{{ID: "anna", Endpoint: "PJSIP/1003", Extension: "1003", Queues: []string{"support"}}}
	})
	daemontest.WaitUntil(t, "the second process ready", func() bool { return second.ready(t) })
	daemontest.WaitUntil(t, "the first process not ready", func() bool { return !first.ready(t) })
	_, body := get(t, first.http, "GET", "/readyz", "")
	if !strings.Contains(body, "taken over by another ARI client (ApplicationReplaced)") ||
		!strings.Contains(body, "callbackd-monitor-x") && !strings.Contains(body, "callbackd-x") || !strings.Contains(body, "instance_id") {
		t.Errorf("/readyz of the replaced process = %q; want it to name the app taken over and point at instance_id", body)
	}

	now := clk.Now()
	job, _, err := first.store.Enqueue(context.Background(), queue.Request{Queue: "support", Number: customer,
		Reason: queue.ReasonVoicemail, Target: "1002", Deadline: now.Add(time.Hour), NotBefore: now, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	var got queue.Job
	daemontest.WaitUntil(t, "the promise to be kept", func() bool {
		got, err = first.store.Get(context.Background(), job.Ref())
		return err == nil && got.State == queue.StateKept
	})
	states, rung := first.times()
	downs := 0
	for _, st := range states {
		if !st.up {
			downs++
		}
	}
	if downs == 0 || len(rung) == 0 {
		t.Fatalf("the first process's connection went %+v and it rang an agent at %v; want it down at least once, and Bob rung", states, rung)
	}
	for _, at := range rung {
		if !upAt(states, at) {
			t.Errorf("the first process rang Bob at %v while the other process held its apps (connection %+v)", at, states)
		}
	}
	if _, rung := second.times(); len(rung) > 0 {
		t.Errorf("the second process rang an agent at %v; its only agent is unreachable", rung)
	}
	daemontest.WaitUntil(t, "the second process not ready once the first took its apps back", func() bool { return !second.ready(t) })
	if !first.ready(t) {
		t.Error("the first process is not ready with its apps back")
	}
}

// The chaos suite's last re-dial: the calling daemon dies while the customer's phone rings;
// the customer answers, talks and hangs up before anyone could adopt the call, so no look
// finds anything. The other daemon heard the answer through its monitor app and records the
// conversation when the dead daemon's lease runs out: kept, no attempt used, the customer not
// rung again.
func TestACustomerWhoAnsweredWhileTheirCallbacksDaemonWasDeadIsNotRungAgain(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	pbx.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
	// The answer comes well inside the dead daemon's lease (30 s, renewed every 10 s): a leg
	// still ringing when the lease runs out is hung up by design, and that call is an attempt.
	pbx.SetEndpoint("PJSIP/"+customer+"@provider", aritest.Behavior{Answer: true, AnswerAfter: 2 * time.Second, HangupAfter: 5 * time.Second})
	rs := redistest.Start(t, redistest.Options{})
	a := startSideBySide(t, pbx, clk, rs, "a", "worker-a", nil)
	b := startSideBySide(t, pbx, clk, rs, "b", "worker-b", nil)
	daemontest.WaitUntil(t, "both daemons ready", func() bool { return a.ready(t) && b.ready(t) })
	call := pbx.Inbound(aritest.InboundCall{From: customer, To: "+31205550103", Steps: []aritest.Step{
		aritest.Dial("PJSIP/1003", 10*time.Second, ""),
		aritest.VoiceMail("1003@default", 3*time.Second),
	}})
	if err := call.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	var job queue.Job
	daemontest.WaitUntil(t, "the customer's phone to ring for the callback", func() bool {
		jobs, err := a.store.List(context.Background(), "support", queue.ListOptions{})
		if err != nil || len(jobs) != 1 || jobs[0].State != queue.StateDialing || jobs[0].DialledAt.IsZero() {
			return false
		}
		job = jobs[0]
		_, cust, _ := ari.CallbackIDs(job.ID, job.Lease.Token)
		// Dialled, not only created: a leg its dead daemon never dialled never rings.
		ch, ok := channel(pbx, cust)
		return ok && (ch.State == "Ringing" || ch.State == "Up")
	})
	owner, other := a, b
	if strings.HasPrefix(job.Lease.Worker, "worker-b/") {
		owner, other = b, a
	}
	owner.kill(pbx)

	var got queue.Job
	for guard := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		got, err = other.store.Get(context.Background(), job.Ref())
		if err == nil && !got.State.Open() {
			break
		}
		if time.Now().After(guard) {
			t.Fatalf("the promise is not finished: %s, attempts %d, history %+v", got.State, got.Attempts, got.History)
		}
	}
	if got.State != queue.StateKept || got.Attempts != 0 {
		t.Errorf("promise %s with %d attempts; want kept with none used; history %+v", got.State, got.Attempts, got.History)
	}
	dialled := 0
	for _, ch := range pbx.ChannelHistory() {
		if strings.Contains(ch.ID, "-customer") {
			dialled++
		}
	}
	if dialled != 1 {
		t.Errorf("customer legs: %d; want 1 — the customer was rung again after talking", dialled)
	}
}
