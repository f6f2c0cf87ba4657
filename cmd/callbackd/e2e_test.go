package main

// End-to-end: the real callbackd binary, started as `callbackd run -c FILE`, against a fake
// Asterisk speaking ARI over HTTP and WebSocket and a real redis-server. Each test owns its
// PBX, Redis and daemon, so they run in parallel. Outcomes are read where an operator would
// read them: the promise store, /metrics, the log, and the REST requests Asterisk received.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

var (
	ria = e2eAgent{ID: "ria", Endpoint: "PJSIP/1001", Extension: "1001"}
	bob = e2eAgent{ID: "bob", Endpoint: "PJSIP/1002", Extension: "1002"}
)

// A voicemail becomes a promise; the free agent is rung, answers, hears the whisper, the
// customer is dialled and answers: the promise is kept, and /metrics says so.
func TestE2EVoicemailIsCalledBackAndKept(t *testing.T) {
	t.Parallel()
	pbx, rds := startE2EPBX(t), startE2ERedis(t)
	const customer = "+31201234501"
	pbx.SetEndpoint(ria.Endpoint, aritest.Answers(500*time.Millisecond))
	pbx.SetEndpoint(customerPhone(customer), talksFor(2*time.Second))
	d := startCallbackd(t, "callbackd", writeE2EConfig(t, e2eDefaults(rds.srv.Addr(), pbx, ria)))
	d.waitReady(1)

	pbx.leavesVoicemail(customer, "2001")

	job := rds.waitPromise(t, "the promise to be kept", inState(queue.StateKept))
	if job.Number != customer || job.Reason() != queue.ReasonVoicemail || job.Target != "2001" {
		t.Errorf("kept promise: %s %s → %s; want %s voicemail → 2001", job.Number, job.Reason(), job.Target, customer)
	}
	if job.Attempts != 0 || job.ConnectedAt.IsZero() || job.ConnectedAt.After(job.Deadline) {
		t.Errorf("%s, connected at %v, deadline %v; want no attempt used, connected before the deadline",
			describeJob(job), job.ConnectedAt, job.Deadline)
	}
	if n := len(pbx.channelsFor(ria.Endpoint)); n != 1 {
		t.Errorf("agent %s rung %d times; want once", ria.ID, n)
	}
	if n := len(pbx.channelsFor(customerPhone(customer))); n != 1 {
		t.Errorf("customer dialled %d times; want once", n)
	}

	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"callbackd_promises_completed_total", map[string]string{"queue": e2eQueue, "outcome": "kept"}, 1},
		{"callbackd_promises_created_total", map[string]string{"queue": e2eQueue, "reason": "voicemail"}, 1},
		{"callbackd_promise_kept_ratio", map[string]string{"queue": e2eQueue}, 1},
		{"callbackd_call_attempts_total", map[string]string{"queue": e2eQueue, "leg": "customer", "result": "answered"}, 1},
		{"callbackd_call_attempts_total", map[string]string{"queue": e2eQueue, "leg": "agent", "result": "answered"}, 1},
	} {
		if got := d.metric(m.name, m.labels); got != m.want {
			t.Errorf("%s%v = %v; want %v", m.name, m.labels, got, m.want)
		}
	}
	for _, line := range d.log.all() {
		if strings.Contains(line, strings.TrimPrefix(customer, "+")) {
			t.Errorf("the customer's number is logged unmasked: %s", line)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := d.get(path); status != http.StatusOK {
			t.Errorf("GET %s: %d %q; want 200", path, status, body)
		}
	}
	if code := d.terminate(); code != 0 {
		t.Errorf("exit code after SIGTERM %d; want 0", code)
	}
}

// A customer who is always busy is tried max_attempts times, retry_backoff apart, and the
// promise then ends unreachable: every attempt is one customer leg, no more.
func TestE2EBusyCustomerBecomesUnreachableAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	pbx, rds := startE2EPBX(t), startE2ERedis(t)
	const customer = "+31201234502"
	pbx.SetEndpoint(ria.Endpoint, aritest.Answers(500*time.Millisecond))
	pbx.SetEndpoint(customerPhone(customer), aritest.Busy(time.Second))
	settings := e2eDefaults(rds.srv.Addr(), pbx, ria)
	settings.MaxAttempts = 3
	d := startCallbackd(t, "callbackd", writeE2EConfig(t, settings))
	d.waitReady(1)

	pbx.ringsUnanswered(customer, "2002")

	job := rds.waitPromise(t, "the promise to become unreachable", inState(queue.StateUnreachable))
	if job.Attempts != settings.MaxAttempts {
		t.Errorf("%s; want %d attempts used", describeJob(job), settings.MaxAttempts)
	}
	if legs := pbx.channelsFor(customerPhone(customer)); len(legs) != settings.MaxAttempts {
		t.Errorf("customer leg created %d times; want exactly %d:\n%v", len(legs), settings.MaxAttempts, legs)
	}
	if got := d.metric("callbackd_call_attempts_total", map[string]string{"queue": e2eQueue, "leg": "customer", "result": "busy"}); got != float64(settings.MaxAttempts) {
		t.Errorf("customer attempts counted busy: %v; want %d", got, settings.MaxAttempts)
	}
	if got := d.metric("callbackd_promises_completed_total", map[string]string{"queue": e2eQueue, "outcome": "unreachable"}); got != 1 {
		t.Errorf("promises completed unreachable: %v; want 1", got)
	}
	if code := d.terminate(); code != 0 {
		t.Errorf("exit code after SIGTERM %d; want 0", code)
	}
}

// An agent who does not answer costs the customer nothing: the promise goes to the next
// agent of the queue without using an attempt, and is kept.
func TestE2EUnansweredAgentPassesThePromiseOnWithoutUsingAnAttempt(t *testing.T) {
	t.Parallel()
	pbx, rds := startE2EPBX(t), startE2ERedis(t)
	const customer = "+31201234503"
	// Ria is at her desk but does not pick up; Bob's phone is not registered yet, so Ria is
	// certainly the one rung first.
	pbx.SetEndpoint(ria.Endpoint, aritest.Rings())
	pbx.SetEndpoint(bob.Endpoint, aritest.Unavailable())
	pbx.SetEndpoint(customerPhone(customer), talksFor(2*time.Second))
	d := startCallbackd(t, "callbackd", writeE2EConfig(t, e2eDefaults(rds.srv.Addr(), pbx, ria, bob)))
	d.waitReady(1)

	pbx.ringsUnanswered(customer, "2003")

	eventually(t, "Ria's phone to ring for the callback", func() (bool, string) {
		return len(pbx.channelsFor(ria.Endpoint)) == 1, "not rung yet"
	})
	pbx.SetEndpoint(bob.Endpoint, aritest.Answers(500*time.Millisecond)) // Bob arrives

	job := rds.waitPromise(t, "the promise to be kept", inState(queue.StateKept))
	if job.Attempts != 0 {
		t.Errorf("%s; want 0 attempts: an agent not answering is not a customer attempt", describeJob(job))
	}
	// The store says kept a moment before the callback logs it: wait for the line.
	eventually(t, "a log line saying "+bob.ID+" kept promise "+job.ID, func() (bool, string) {
		return d.logged("callback settled", map[string]string{"promise": job.ID, "agent": bob.ID, "state": "kept"}), "not logged"
	})
	if n := len(pbx.channelsFor(ria.Endpoint)); n != 1 {
		t.Errorf("Ria rung %d times; want once (then cooldown)", n)
	}
	if n := len(pbx.channelsFor(bob.Endpoint)); n != 1 {
		t.Errorf("Bob rung %d times; want once", n)
	}
	if n := len(pbx.channelsFor(customerPhone(customer))); n != 1 {
		t.Errorf("customer dialled %d times; want once, after Bob answered", n)
	}
	if got := d.metric("callbackd_call_attempts_total", map[string]string{"queue": e2eQueue, "leg": "agent", "result": "no_answer"}); got != 1 {
		t.Errorf("agent attempts counted no_answer: %v; want 1", got)
	}
	if code := d.terminate(); code != 0 {
		t.Errorf("exit code after SIGTERM %d; want 0", code)
	}
}

// A promise whose deadline passes while the only agent is on another call is still called
// back once the agent is free, and counted late, not kept.
func TestE2EPromiseCalledBackAfterItsDeadlineIsLate(t *testing.T) {
	t.Parallel()
	pbx, rds := startE2EPBX(t), startE2ERedis(t)
	const customer = "+31201234504"
	pbx.SetEndpoint(ria.Endpoint, aritest.Answers(500*time.Millisecond))
	pbx.SetEndpoint(customerPhone(customer), talksFor(2*time.Second))
	settings := e2eDefaults(rds.srv.Addr(), pbx, ria)
	settings.VoicemailDeadline = "3s"
	d := startCallbackd(t, "callbackd", writeE2EConfig(t, settings))
	d.waitReady(1)

	// Ria takes an internal call (her device goes INUSE), then the customer leaves a message.
	// A real dialled call, not a channel created Up: the fake announces INUSE only when a
	// channel goes Up, and its GET /deviceStates/PJSIP%2F1001 answers 404, so the daemon
	// would never learn about a channel that was simply created in the Up state.
	pbx.SetEndpoint("PJSIP/1005", aritest.Answers(0))
	internal := pbx.Inbound(aritest.InboundCall{From: "1005", Endpoint: "PJSIP/1005", Context: "internal", To: "1001",
		Steps: []aritest.Step{aritest.Dial(ria.Endpoint, 30*time.Second, ""), aritest.Talk(time.Hour)}})
	eventually(t, "Ria to be busy on the internal call", func() (bool, string) {
		busy := d.metric("callbackd_agents", map[string]string{"state": "busy"})
		return busy == 1, fmt.Sprintf("%v agents busy", busy)
	})
	pbx.leavesVoicemail(customer, "2004")

	job := rds.waitPromise(t, "the deadline of the promise to pass", func(j queue.Job) bool {
		return clock.Real{}.Now().After(j.Deadline.Add(500 * time.Millisecond))
	})
	if job.State != queue.StatePending || job.Attempts != 0 {
		t.Fatalf("%s; want still pending, untouched, while the only agent is busy", describeJob(job))
	}
	if n := len(pbx.channelsFor(ria.Endpoint)); n != 0 {
		t.Fatalf("Ria rung %d times for the callback while on another call", n)
	}
	// Ria hangs up her internal call.
	for _, ch := range pbx.Channels() {
		if strings.HasPrefix(ch.Name, ria.Endpoint+"-") {
			pbx.Hangup(ch.ID, 16)
		}
	}
	pbx.Hangup(internal.Channel.ID, 16)

	job = rds.waitPromise(t, "the promise to be settled", func(j queue.Job) bool { return !j.State.Open() })
	if job.State != queue.StateLate || !job.ConnectedAt.After(job.Deadline) {
		t.Errorf("%s, connected at %v, deadline %v; want late", describeJob(job), job.ConnectedAt, job.Deadline)
	}
	if got := d.metric("callbackd_promises_completed_total", map[string]string{"queue": e2eQueue, "outcome": "late"}); got != 1 {
		t.Errorf("promises completed late: %v; want 1", got)
	}
	if got := d.metric("callbackd_promise_kept_ratio", map[string]string{"queue": e2eQueue}); got != 0 {
		t.Errorf("kept ratio %v; want 0", got)
	}
	if code := d.terminate(); code != 0 {
		t.Errorf("exit code after SIGTERM %d; want 0", code)
	}
}

// SIGTERM while a callback is in progress: the daemon gives the call its grace, hangs up,
// hands the promise back without using an attempt and exits 0. Nothing is lost: the next
// daemon keeps the promise.
func TestE2ESigtermDuringACallbackHandsThePromiseBack(t *testing.T) {
	t.Parallel()
	pbx, rds := startE2EPBX(t), startE2ERedis(t)
	const customer = "+31201234505"
	pbx.SetEndpoint(ria.Endpoint, aritest.Rings())
	pbx.SetEndpoint(customerPhone(customer), talksFor(2*time.Second))
	config := writeE2EConfig(t, e2eDefaults(rds.srv.Addr(), pbx, ria))
	first := startCallbackd(t, "first callbackd", config)
	first.waitReady(1)

	pbx.ringsUnanswered(customer, "2005")
	eventually(t, "Ria's phone to ring for the callback", func() (bool, string) {
		return len(pbx.channelsFor(ria.Endpoint)) == 1, "not rung yet"
	})
	if code := first.terminate(); code != 0 {
		t.Fatalf("exit code after SIGTERM %d; want 0", code)
	}

	jobs := rds.promises(t)
	if len(jobs) != 1 || jobs[0].State != queue.StatePending || jobs[0].Attempts != 0 {
		var got []string
		for _, j := range jobs {
			got = append(got, describeJob(j))
		}
		t.Fatalf("after the shutdown: %v; want the one promise pending again with 0 attempts", got)
	}
	if !first.logged("callback settled", map[string]string{"promise": jobs[0].ID, "state": "pending", "detail": "stopped while the agent rang"}) {
		t.Errorf("no log line says promise %s was handed back because the daemon stopped while the agent rang", jobs[0].ID)
	}
	if keys := rds.reservations(t); len(keys) != 0 {
		t.Errorf("agent reservations left in Redis after the shutdown: %v", keys)
	}
	for _, ch := range pbx.Channels() {
		if strings.HasPrefix(ch.Name, ria.Endpoint+"-") {
			t.Errorf("Ria's callback leg %s (%s) still up after the shutdown", ch.ID, ch.State)
		}
	}

	pbx.SetEndpoint(ria.Endpoint, aritest.Answers(500*time.Millisecond)) // Ria is back at her desk
	second := startCallbackd(t, "second callbackd", config)
	job := rds.waitPromise(t, "the promise to be kept by the restarted daemon", inState(queue.StateKept))
	if job.Attempts != 0 {
		t.Errorf("%s; want 0 attempts", describeJob(job))
	}
	if code := second.terminate(); code != 0 {
		t.Errorf("exit code of the second daemon after SIGTERM %d; want 0", code)
	}
}

// A number outside dialer.allow (toll-fraud guard) is never promised and never dialled: the
// request is refused when the promise would be made, nothing is stored for it, no agent is
// rung for it, no channel is created for it, and the log says why.
func TestE2ENumberOutsideTheAllowListIsNeverDialled(t *testing.T) {
	t.Parallel()
	pbx, rds := startE2EPBX(t), startE2ERedis(t)
	const belgian = "+3227654321"
	pbx.SetEndpoint(ria.Endpoint, aritest.Answers(500*time.Millisecond))
	pbx.SetEndpoint(customerPhone(belgian), talksFor(2*time.Second))
	d := startCallbackd(t, "callbackd", writeE2EConfig(t, e2eDefaults(rds.srv.Addr(), pbx, ria)))
	d.waitReady(1)

	pbx.leavesVoicemail(belgian, "2006")

	eventually(t, "the request to be refused", func() (bool, string) {
		n := d.metric("callbackd_requests_refused_total", map[string]string{"reason": "not_allowed"})
		return n == 1, fmt.Sprintf("refused not_allowed: %v", n)
	})
	if jobs := rds.promises(t); len(jobs) != 0 {
		t.Errorf("promises stored for a number dialer.allow refuses: %v", jobs)
	}
	if legs := pbx.channelsFor(customerPhone(belgian)); len(legs) != 0 {
		t.Errorf("channels requested for the disallowed number: %v", legs)
	}
	if reqs := pbx.mentioning(strings.TrimPrefix(belgian, "+")); len(reqs) != 0 {
		t.Errorf("REST requests mentioning the disallowed number (an agent rung for it?): %v", reqs)
	}
	if legs := pbx.channelsFor(ria.Endpoint); len(legs) != 0 {
		t.Errorf("agent rung for a number that can never be dialled: %v", legs)
	}
	refusal := ""
	for _, e := range d.loggedAll("callback request refused", map[string]string{"refusal": "not_allowed"}) {
		refusal = e.str("error")
	}
	if !strings.Contains(refusal, "dialer.allow") || !strings.Contains(refusal, "matches none of dialer.allow.patterns") ||
		strings.Contains(refusal, strings.TrimPrefix(belgian, "+")) {
		t.Errorf("refusal logged as %q; want it to name dialer.allow and why, the number masked", refusal)
	}
	if code := d.terminate(); code != 0 {
		t.Errorf("exit code after SIGTERM %d; want 0", code)
	}
}

// A spoofed burst — ten caller ids from one number block within seconds — makes at most the
// block's limit of promises; the rest are refused rate_limited with nothing stored or dialled
// for them, and beyond the overall dial limit even accepted promises wait for the next hour.
func TestE2ESpoofedBurstIsRefusedAfterTheLimitWithNothingDialled(t *testing.T) {
	t.Parallel()
	pbx, rds := startE2EPBX(t), startE2ERedis(t)
	pbx.SetEndpoint(ria.Endpoint, aritest.Answers(200*time.Millisecond))
	s := e2eDefaults(rds.srv.Addr(), pbx, ria)
	s.RateLimits = "{promises_per_block_per_hour: 4, block_digits: 9, dials_per_hour: 2}"
	d := startCallbackd(t, "callbackd", writeE2EConfig(t, s))
	d.waitReady(1)

	var burst []string
	for i := range 10 {
		n := fmt.Sprintf("+312012345%02d", 10+i)
		burst = append(burst, n)
		pbx.SetEndpoint(customerPhone(n), talksFor(time.Second))
	}
	for _, n := range burst {
		pbx.leavesVoicemail(n, "2007")
	}

	eventually(t, "six requests refused", func() (bool, string) {
		n := d.metric("callbackd_requests_refused_total", map[string]string{"reason": "rate_limited"})
		return n == 6, fmt.Sprintf("refused rate_limited: %v", n)
	})
	eventually(t, "two callbacks held back by dials_per_hour", func() (bool, string) {
		n := len(d.loggedAll("callback held back: rate limit reached", map[string]string{"limit": "dials_per_hour"}))
		return n >= 2, fmt.Sprintf("%d held back", n)
	})
	promised := map[string]bool{}
	for _, j := range rds.promises(t) {
		promised[j.Number] = true
	}
	if len(promised) != 4 {
		t.Errorf("promises for %d numbers; want 4 (promises_per_block_per_hour)", len(promised))
	}
	dialled := 0
	for _, n := range burst {
		legs := pbx.channelsFor(customerPhone(n))
		dialled += len(legs)
		if !promised[n] && len(legs) > 0 {
			t.Errorf("refused number %s dialled: %v", n, legs)
		}
	}
	if dialled != 2 {
		t.Errorf("%d customer calls placed; want 2 (dials_per_hour)", dialled)
	}
	if refusedLines := len(d.loggedAll("callback request refused", map[string]string{"refusal": "rate_limited"})); refusedLines != 6 {
		t.Errorf("%d refusal log lines; want one per refused request (6)", refusedLines)
	}
	if code := d.terminate(); code != 0 {
		t.Errorf("exit code after SIGTERM %d; want 0", code)
	}
}

// `callbackd run` with a configuration it cannot use exits 1 and names the key at fault.
func TestE2ERunRefusesABadConfigNamingTheProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		name, config, want string
	}{
		{"max attempts zero", `
asterisk:
  - {name: pbx, url: "http://127.0.0.1:1/ari", username: callbackd, password: secret}
queues:
  - {name: support, max_attempts: 0}
`, "queues[0].max_attempts"},
		{"unknown key", `
asterisk:
  - {name: pbx, url: "http://127.0.0.1:1/ari", username: callbackd, password: secret}
queues:
  - {name: support, deadlines: {voicemail: 1h}}
`, "deadlines"},
		{"missing file", "", "does-not-exist.yml"},
		// Valid, but Redis does not answer: nothing can be promised, so it does not start.
		{"redis not reachable", `
redis: {addr: "127.0.0.1:1", dial_timeout: 200ms}
asterisk:
  - {name: pbx, url: "http://127.0.0.1:1/ari", username: callbackd, password: secret}
queues:
  - {name: support}
http: {listen: "127.0.0.1:0"}
`, "127.0.0.1:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "does-not-exist.yml")
			if tc.config != "" {
				path = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yml")
				if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			code, output := runCallbackdToExit(t, "run", "-c", path)
			if code != 1 || !strings.Contains(output, tc.want) {
				t.Errorf("exit code %d, output:\n%s\nwant exit 1 and output naming %q", code, output, tc.want)
			}
		})
	}
}

// run refuses the example configuration as shipped, naming what to change, unless told to
// run it anyway.
func TestE2ERunRefusesTheExampleUnlessAllowed(t *testing.T) {
	code, out := runCallbackdToExit(t, "run", "-c", exampleConfig)
	for _, want := range []string{"asterisk[0].password: is the example's \"change-me\"", "dialer.caller_id.number", "--allow-example"} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("run -c the example: exit %d, output %q; want exit 1 naming %q", code, out, want)
		}
	}
}

// SIGTERM while the daemon still waits for Redis to answer at start (a Redis that accepts the
// connection and never replies, as one stuck loading its data or behind a dead link) is a
// stop, not a failure: exit 0, as for every signal, so `systemctl stop` does not leave the unit
// failed.
func TestE2ESigtermWhileWaitingForRedisAtStartExitsZero(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	defer func() {
		_ = silent.Close()
		for c := range accepted {
			_ = c.Close()
		}
	}()
	path := filepath.Join(t.TempDir(), "callbackd.yml")
	yaml := `
redis: {addr: "` + silent.Addr().String() + `"}
asterisk:
  - {name: pbx, url: "http://127.0.0.1:1/ari", username: callbackd, password: secret}
queues:
  - {name: support}
http: {listen: "127.0.0.1:0"}
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &logLines{}
	cmd := exec.Command(callbackdBinary(t), "run", "-c", path)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	select {
	case c := <-accepted: // the daemon is asking Redis
		defer c.Close()
	case err := <-exited:
		t.Fatalf("callbackd exited before it asked Redis: %v\n%s", err, strings.Join(out.all(), "\n"))
	case <-time.After(e2eGuard):
		t.Fatalf("callbackd never connected to Redis\n%s", strings.Join(out.all(), "\n"))
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var werr error
	select {
	case werr = <-exited:
	case <-time.After(e2eGuard):
		t.Fatalf("callbackd did not exit after SIGTERM\n%s", strings.Join(out.all(), "\n"))
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		code = ee.ExitCode()
	} else if werr != nil {
		t.Fatal(werr)
	}
	if code != 0 {
		t.Errorf("exit code after SIGTERM during the start %d; want 0\n%s", code, strings.Join(out.all(), "\n"))
	}
}
