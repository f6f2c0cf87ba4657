package main

// The chaos suite (chaos_test.go, chaos_long_test.go): compiled callbackd daemons as real
// processes against the fake Asterisk (behind the e2e recording proxy) and a real
// redis-server with AOF, a seeded schedule of customer calls and faults, and at the end an
// account, from the fake PBX's own record and from Redis, of what the faults cost.
//
// Daemons run as processes on the real clock, not in-process on a fake one: a kill -9 must be
// the kernel's — no deferred code, sockets reset by the OS, a Redis write cut wherever it
// was — which no abandoned goroutine can imitate (it would keep running and writing).
// Real time is kept short instead: seconds-long rings and talks, a 3 s lease.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// callKind is what the customer's call in does.
type callKind string

const (
	callAnswered       callKind = "answered"         // reaches the extension: no promise
	callUnanswered     callKind = "unanswered"       // rings out at an extension: a promise
	callVoicemail      callKind = "voicemail"        // leaves a message: a promise
	callGreetingHangup callKind = "greeting hang-up" // hangs up in the greeting: no promise
)

func (k callKind) promises() bool { return k == callUnanswered || k == callVoicemail }

// answerKind is what the customer does when called back.
type answerKind string

const (
	answersCallback answerKind = "answers"
	busyCallback    answerKind = "busy"
	ignoresCallback answerKind = "no answer"
)

// faultKind is one kind of fault the schedule injects.
type faultKind string

const (
	faultKill9   faultKind = "kill -9 daemon"
	faultSIGTERM faultKind = "SIGTERM daemon"
	faultRedis   faultKind = "kill -9 redis"
	faultARIDrop faultKind = "ARI socket drop"
	// faultTwin starts a third daemon with the application names of daemon 0 for a few
	// seconds: Asterisk gives daemon 0 ApplicationReplaced (a misconfiguration to survive).
	faultTwin faultKind = "twin app names"
)

var faultOrder = []faultKind{faultKill9, faultSIGTERM, faultRedis, faultARIDrop, faultTwin}

// chaosPlan is what one run does; the seed decides everything else.
type chaosPlan struct {
	Seed        uint64
	Calls       int
	Span        time.Duration // calls arrive over this much time
	Agents      int
	MaxAttempts int
	Faults      map[faultKind]int
}

type chaosCall struct {
	Number   string
	Kind     callKind
	Answer   answerKind
	At       time.Duration
	inbound  *aritest.Call
	placedAt time.Time
}

type chaosFault struct {
	Kind   faultKind
	Daemon int
	At     time.Duration
	Down   time.Duration
}

// schedule draws the calls and faults of plan from its seed.
func (p chaosPlan) schedule() ([]*chaosCall, []chaosFault) {
	rng := rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
	calls := make([]*chaosCall, p.Calls)
	for i := range calls {
		// A number block of its own per call (the first 8 digits, dialer.rate_limits), a
		// subscriber number starting 2–9 as Amsterdam's do.
		c := &chaosCall{Number: fmt.Sprintf("+3120%d%03d%03d", 2+i%8, i/8, p.Seed%1000),
			At: time.Duration(rng.Int64N(int64(p.Span)))}
		c.Kind = pick(rng, []callKind{callAnswered, callGreetingHangup, callUnanswered, callVoicemail}, 15, 10, 40, 35)
		c.Answer = pick(rng, []answerKind{answersCallback, busyCallback, ignoresCallback}, 60, 20, 20)
		calls[i] = c
	}
	sort.Slice(calls, func(i, j int) bool { return calls[i].At < calls[j].At })
	var faults []chaosFault
	for _, k := range faultOrder {
		for n := 0; n < p.Faults[k]; n++ {
			faults = append(faults, chaosFault{Kind: k, Daemon: rng.IntN(2),
				At:   2*time.Second + time.Duration(rng.Int64N(int64(p.Span))),
				Down: 300*time.Millisecond + time.Duration(rng.Int64N(int64(2700*time.Millisecond)))})
		}
	}
	sort.Slice(faults, func(i, j int) bool { return faults[i].At < faults[j].At })
	return calls, faults
}

// pick draws one of choices, each with its weight.
func pick[T any](rng *rand.Rand, choices []T, weights ...int) T {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := rng.IntN(total)
	for i, w := range weights {
		if n < w {
			return choices[i]
		}
		n -= w
	}
	return choices[len(choices)-1]
}

// ---- the daemons ----

// chaosConfig is the e2e configuration (3 s lease, 1 s shutdown grace) with the daemon's
// own Stasis application names (two daemons on one Asterisk each need theirs) and numbers
// logged unmasked.
func chaosConfig(s e2eSettings, monitorApp, controlApp string) (string, error) {
	var b strings.Builder
	if err := e2eConfigTemplate.Execute(&b, s); err != nil {
		return "", fmt.Errorf("writing the configuration: %w", err)
	}
	const after = "    password: callbackd-secret\n"
	if !strings.Contains(b.String(), after) {
		return "", fmt.Errorf("the e2e configuration has no line %q to put the app names after", after)
	}
	text := strings.Replace(b.String(), after, after+"    monitor_app: "+monitorApp+"\n    control_app: "+controlApp+"\n", 1)
	// Unmasked numbers, so that a defect's customer can be followed through the kept logs.
	return strings.Replace(text, "  format: json\n", "  format: json\n  mask_numbers: false\n", 1), nil
}

type chaosDaemon struct {
	slot   int
	cmd    *exec.Cmd
	log    *logLines
	http   string
	exited chan struct{}
}

// life is one daemon process from ready to exit.
type life struct {
	slot         int
	pid          int
	ready, ended time.Time
	how          string
}

type killRecord struct {
	at   time.Time
	held []string // promises the killed daemon held (dialing or connected)
}

type span struct{ from, to time.Time }

// chaosRun is one run of a plan.
type chaosRun struct {
	t       *testing.T
	plan    chaosPlan
	pbx     *e2ePBX
	rds     *e2eRedis
	dir     string
	configs [3]string // daemon 0, daemon 1, daemon 0's twin
	lease   time.Duration
	wall    clock.Real
	start   time.Time

	mu         sync.Mutex
	daemons    [3]*chaosDaemon
	lives      []life
	redisDown  []span
	kills      []killRecord
	faultsDone map[faultKind]int
	problems   []string
}

func newChaosRun(t *testing.T, plan chaosPlan) *chaosRun {
	t.Helper()
	dir, err := os.MkdirTemp("", fmt.Sprintf("callbackd-chaos-%d-", plan.Seed))
	if err != nil {
		t.Fatalf("making the chaos log directory: %v", err)
	}
	r := &chaosRun{t: t, plan: plan, pbx: startE2EPBX(t), rds: startE2ERedis(t), dir: dir, faultsDone: map[faultKind]int{}}
	t.Cleanup(func() {
		// Runs before the e2e PBX's own clean-up, which would print the fake's whole log on
		// failure: a chaos run's goes to a file instead.
		r.pbx.mu.Lock()
		fakeLog := strings.Join(r.pbx.fakeLog, "\n")
		r.pbx.fakeLog = nil
		r.pbx.mu.Unlock()
		if t.Failed() {
			_ = os.WriteFile(filepath.Join(dir, "fake-asterisk.log"), []byte(fakeLog), 0o600)
			t.Logf("daemon logs, the fake Asterisk's log and the report are kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	var agents []e2eAgent
	for i := 0; i < plan.Agents; i++ {
		a := e2eAgent{ID: fmt.Sprintf("agent%d", i+1), Endpoint: fmt.Sprintf("PJSIP/%d", 1001+i), Extension: fmt.Sprint(1001 + i)}
		agents = append(agents, a)
		r.pbx.SetEndpoint(a.Endpoint, aritest.Answers(500*time.Millisecond))
	}
	apps := [3][2]string{{"callbackd-monitor", "callbackd"}, {"callbackd-monitor-b", "callbackd-b"}, {"callbackd-monitor", "callbackd"}}
	settings := e2eDefaults(r.rds.srv.Addr(), r.pbx, agents...)
	settings.MaxAttempts = plan.MaxAttempts
	for i, a := range apps {
		r.configs[i] = filepath.Join(dir, fmt.Sprintf("callbackd-%d.yml", i))
		text, err := chaosConfig(settings, a[0], a[1])
		if err == nil {
			err = os.WriteFile(r.configs[i], []byte(text), 0o600)
		}
		if err != nil {
			t.Fatalf("configuration of daemon %d: %v", i, err)
		}
	}
	// The recovery bound is the lease the daemons read, not a copy of it.
	cfg, err := config.Load(r.configs[0], func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("reading back daemon 0's configuration: %v", err)
	}
	r.lease = cfg.Dialer.Lease.D()
	return r
}

func (r *chaosRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// startDaemon runs `callbackd run` for slot and waits until /readyz says ready.
func (r *chaosRun) startDaemon(slot int) error {
	bin := callbackdBinary(r.t)
	d := &chaosDaemon{slot: slot, log: &logLines{}, exited: make(chan struct{})}
	logFile, err := os.OpenFile(filepath.Join(r.dir, fmt.Sprintf("daemon-%d.log", slot)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("opening the log of daemon %d: %w", slot, err)
	}
	d.cmd = exec.Command(bin, "run", "-c", r.configs[slot])
	out := multiWriter{d.log, logFile}
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting daemon %d: %w", slot, err)
	}
	go func() {
		defer close(d.exited)
		_ = d.cmd.Wait()
		logFile.Close()
	}()
	r.t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.exited
	})
	guard := time.After(e2eGuard)
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("daemon %d exited before it was ready", slot)
		case <-guard:
			_ = d.cmd.Process.Kill()
			return fmt.Errorf("daemon %d not ready within %v", slot, e2eGuard)
		case <-time.After(50 * time.Millisecond):
		}
		if d.http == "" {
			for _, e := range d.log.entries() {
				if e.str("msg") == "serving metrics and health" && e.str("addr") != "" {
					d.http = e.str("addr")
				}
			}
			continue
		}
		if status, _ := httpGet(d.http, "/readyz"); status == http.StatusOK {
			break
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.daemons[slot] = d
	r.lives = append(r.lives, life{slot: slot, pid: d.cmd.Process.Pid, ready: r.wall.Now()})
	return nil
}

// stopDaemon ends slot's process with sig and waits for it to exit.
func (r *chaosRun) stopDaemon(slot int, sig syscall.Signal) (*chaosDaemon, error) {
	r.mu.Lock()
	d := r.daemons[slot]
	r.mu.Unlock()
	if d == nil {
		return nil, nil
	}
	if err := d.cmd.Process.Signal(sig); err != nil {
		return d, fmt.Errorf("signalling daemon %d: %w", slot, err)
	}
	select {
	case <-d.exited:
	case <-time.After(e2eGuard):
		_ = d.cmd.Process.Kill()
		<-d.exited
		r.problem("daemon %d did not exit within %v of %v", slot, e2eGuard, sig)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.daemons[slot] = nil
	for i := range r.lives {
		if r.lives[i].pid == d.cmd.Process.Pid {
			r.lives[i].ended, r.lives[i].how = r.wall.Now(), sig.String()
		}
	}
	if sig == syscall.SIGTERM && d.cmd.ProcessState.ExitCode() != 0 {
		r.problems = append(r.problems, fmt.Sprintf("daemon %d exited %d after SIGTERM", slot, d.cmd.ProcessState.ExitCode()))
	}
	return d, nil
}

type multiWriter [2]interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	for _, w := range m {
		if _, err := w.Write(p); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func httpGet(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// ---- the run ----

// run places the calls and injects the faults, then waits for the PBX and the store to come to
// rest and returns the account.
func (r *chaosRun) run() chaosReport {
	calls, faults := r.plan.schedule()
	for _, c := range calls {
		switch c.Answer {
		case answersCallback:
			r.pbx.SetEndpoint(customerPhone(c.Number), talksFor(2*time.Second))
		case busyCallback:
			r.pbx.SetEndpoint(customerPhone(c.Number), aritest.Busy(time.Second))
		default:
			r.pbx.SetEndpoint(customerPhone(c.Number), aritest.Rings())
		}
	}
	r.pbx.SetEndpoint("PJSIP/2100", aritest.Answers(time.Second))
	r.pbx.SetEndpoint("PJSIP/2200", aritest.Rings())
	for slot := 0; slot < 2; slot++ {
		if err := r.startDaemon(slot); err != nil {
			r.t.Fatal(err)
		}
	}
	r.start = r.wall.Now()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		for _, f := range faults {
			if !sleepUntil(ctx, r.start.Add(f.At)) {
				return
			}
			r.inject(f)
		}
	}()
	for _, c := range calls {
		sleepUntil(ctx, r.start.Add(c.At))
		c.placedAt = r.wall.Now()
		c.inbound = r.place(c)
	}
	<-faultsDone
	for _, c := range calls {
		select {
		case <-c.inbound.Done():
		case <-time.After(e2eGuard):
			r.problem("the call from %s never ended", c.Number)
		}
	}
	settled := r.settle(calls)
	return r.account(calls, settled)
}

func sleepUntil(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *chaosRun) place(c *chaosCall) *aritest.Call {
	var steps []aritest.Step
	switch c.Kind {
	case callAnswered:
		steps = []aritest.Step{aritest.Dial("PJSIP/2100", 10*time.Second, ""), aritest.Talk(2 * time.Second)}
	case callUnanswered:
		steps = []aritest.Step{aritest.Dial("PJSIP/2200", 2*time.Second, "")}
	case callVoicemail:
		steps = []aritest.Step{aritest.VoiceMail("2001@default", time.Second)}
	default:
		steps = []aritest.Step{aritest.VoiceMailHangupInGreeting("2001@default", 2*time.Second)}
	}
	return r.pbx.Inbound(aritest.InboundCall{From: c.Number, To: "+31205550100", Steps: steps})
}

// inject runs one fault to its end: the damage, the down time, the recovery.
func (r *chaosRun) inject(f chaosFault) {
	switch f.Kind {
	case faultKill9:
		d, err := r.stopDaemon(f.Daemon, syscall.SIGKILL)
		if err != nil || d == nil {
			r.problem("kill -9 of daemon %d: %v", f.Daemon, err)
			return
		}
		rec := killRecord{at: r.wall.Now()}
		jobs, err := r.rds.store.List(context.Background(), e2eQueue, queue.ListOptions{States: []queue.State{queue.StateDialing, queue.StateConnected}, Limit: 1000})
		if err != nil {
			r.problem("reading the killed daemon's promises: %v", err)
		}
		for _, j := range jobs {
			if strings.Contains(j.Lease.Worker, fmt.Sprintf("-%d-", d.cmd.Process.Pid)) {
				rec.held = append(rec.held, j.ID)
			}
		}
		r.mu.Lock()
		r.kills = append(r.kills, rec)
		r.mu.Unlock()
		time.Sleep(f.Down)
		r.restart(f.Daemon)
	case faultSIGTERM:
		if _, err := r.stopDaemon(f.Daemon, syscall.SIGTERM); err != nil {
			r.problem("SIGTERM of daemon %d: %v", f.Daemon, err)
		}
		time.Sleep(f.Down)
		r.restart(f.Daemon)
	case faultRedis:
		down := r.wall.Now()
		r.rds.srv.Stop()
		time.Sleep(f.Down)
		r.rds.srv.Restart()
		r.mu.Lock()
		r.redisDown = append(r.redisDown, span{down, r.wall.Now()})
		r.mu.Unlock()
	case faultARIDrop:
		r.pbx.DropWebSockets()
	case faultTwin:
		if err := r.startDaemon(2); err != nil {
			r.problem("starting the twin: %v", err)
			return
		}
		time.Sleep(f.Down + 2*time.Second)
		if _, err := r.stopDaemon(2, syscall.SIGTERM); err != nil {
			r.problem("stopping the twin: %v", err)
		}
	}
	r.mu.Lock()
	r.faultsDone[f.Kind]++
	r.mu.Unlock()
}

func (r *chaosRun) restart(slot int) {
	if err := r.startDaemon(slot); err != nil {
		r.problem("restarting daemon %d: %v", slot, err)
	}
}

// settle waits until every promise is finished and the PBX holds no channel, or until nothing
// has changed for a while (what is left then is stuck); it returns when it stopped.
func (r *chaosRun) settle(calls []*chaosCall) time.Time {
	const quiet, stall = 3 * time.Second, 30 * time.Second
	guard := r.wall.Now().Add(5 * time.Minute)
	var last string
	lastChange, restSince := r.wall.Now(), time.Time{}
	for {
		open, err := r.rds.store.List(context.Background(), e2eQueue, queue.ListOptions{
			States: []queue.State{queue.StatePending, queue.StateDialing, queue.StateConnected}, Limit: 1000})
		if err != nil {
			r.problem("reading open promises while settling: %v", err)
		}
		state := fmt.Sprintf("%d open, %d channels, %d legs", len(open), len(r.pbx.Channels()), len(r.pbx.ChannelHistory()))
		now := r.wall.Now()
		if state != last {
			last, lastChange = state, now
		}
		if len(open) == 0 && len(r.pbx.Channels()) == 0 {
			if restSince.IsZero() {
				restSince = now
			}
			if now.Sub(restSince) >= quiet {
				return now
			}
		} else {
			restSince = time.Time{}
		}
		if now.Sub(lastChange) >= stall || now.After(guard) {
			return now
		}
		time.Sleep(500 * time.Millisecond)
	}
}
