package main

// Helpers of the end-to-end tests (e2e_test.go): they build the real callbackd binary, run it
// as its own process against a fake Asterisk (behind a proxy that records every REST request
// the daemon makes) and a real redis-server, and read what it did from Redis, /metrics and
// its JSON log.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// e2eQueue is the one queue of every end-to-end configuration.
const e2eQueue = "support"

// e2eGuard only keeps a broken daemon from hanging the test run; no test asserts on how
// long anything takes.
const e2eGuard = 60 * time.Second

// The binary is built once per test run, on first use, so `go test -run` of the unit tests
// alone pays nothing for it.
var e2eBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if e2eBuild.dir != "" {
		_ = os.RemoveAll(e2eBuild.dir)
	}
	os.Exit(code)
}

// callbackdBinary returns the path of a callbackd binary built from this package.
func callbackdBinary(t *testing.T) string {
	t.Helper()
	e2eBuild.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			e2eBuild.err = fmt.Errorf("finding the go tool to build callbackd: %w", err)
			return
		}
		if e2eBuild.dir, err = os.MkdirTemp("", "callbackd-e2e-"); err != nil {
			e2eBuild.err = fmt.Errorf("making a directory for the callbackd binary: %w", err)
			return
		}
		path := filepath.Join(e2eBuild.dir, "callbackd")
		// `go test` runs in the package directory, cmd/callbackd: "." is the command.
		args := []string{"build", "-o", path}
		if raceEnabled {
			// The daemon under test gets the race detector whenever the tests have it.
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool, append(args, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			e2eBuild.err = fmt.Errorf("building callbackd: %w\n%s", err, out)
			return
		}
		e2eBuild.path = path
	})
	if e2eBuild.err != nil {
		t.Fatal(e2eBuild.err)
	}
	return e2eBuild.path
}

// ---- the fake Asterisk, seen through a recording proxy ----

// restRequest is one REST request the daemon made to Asterisk.
type restRequest struct {
	Method, Path string
	Query        url.Values
	Body         map[string]any
}

// endpoint is the channel endpoint a request asked for (originate and create send it in the
// JSON body), "" for other requests.
func (r restRequest) endpoint() string {
	if v, ok := r.Body["endpoint"].(string); ok {
		return v
	}
	return r.Query.Get("endpoint")
}

// createsChannel reports whether r asks Asterisk for a new channel: an originate or a create.
func (r restRequest) createsChannel() bool {
	return r.Method == http.MethodPost && (r.Path == "/ari/channels" || r.Path == "/ari/channels/create")
}

func (r restRequest) String() string {
	body, _ := json.Marshal(r.Body)
	return fmt.Sprintf("%s %s?%s %s", r.Method, r.Path, r.Query.Encode(), body)
}

// e2ePBX is a fake Asterisk on the real clock (the daemon is another process: wall time is
// the only clock both share). The daemon talks to it through URL, a proxy that records every
// REST request with its body, because originate and create carry the endpoint in the body,
// which the fake's own request log (Options.Logf) does not show.
type e2ePBX struct {
	*aritest.Server
	proxy *httptest.Server

	mu       sync.Mutex
	requests []restRequest
	fakeLog  []string
}

func startE2EPBX(t *testing.T) *e2ePBX {
	t.Helper()
	p := &e2ePBX{}
	srv, err := aritest.New(aritest.Options{Clock: clock.Real{}, Logf: func(format string, args ...any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.fakeLog = append(p.fakeLog, fmt.Sprintf(format, args...))
	}})
	if err != nil {
		t.Fatalf("starting the fake Asterisk: %v", err)
	}
	p.Server = srv
	t.Cleanup(srv.Close)
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatalf("parsing the fake Asterisk's URL: %v", err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	p.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ari/events" {
			p.record(r)
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(p.proxy.Close)
	t.Cleanup(func() {
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Logf("fake Asterisk log:\n%s", strings.Join(p.fakeLog, "\n"))
		}
	})
	srv.SetEndpoint("PJSIP/trunk", aritest.Behavior{Answer: true})
	return p
}

func (p *e2ePBX) record(r *http.Request) {
	rec := restRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
	if r.Body != nil {
		data, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(data))
		if len(bytes.TrimSpace(data)) > 0 {
			_ = json.Unmarshal(data, &rec.Body)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, rec)
}

// URL is the ARI base URL the daemon is configured with.
func (p *e2ePBX) URL() string { return p.proxy.URL + "/ari" }

// channelsFor lists the requests that asked for a channel on endpoint.
func (p *e2ePBX) channelsFor(endpoint string) []restRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []restRequest
	for _, r := range p.requests {
		if r.createsChannel() && r.endpoint() == endpoint {
			out = append(out, r)
		}
	}
	return out
}

// mentioning lists the requests whose path, query or body contain s.
func (p *e2ePBX) mentioning(s string) []restRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []restRequest
	for _, r := range p.requests {
		if strings.Contains(r.String(), s) || strings.Contains(r.String(), url.QueryEscape(s)) {
			out = append(out, r)
		}
	}
	return out
}

// customerPhone is the endpoint callbackd dials for number (dialer.customer_dial_template).
func customerPhone(number string) string { return "PJSIP/" + number + "@provider" }

// talksFor is a customer who answers after a moment and hangs up after talking d: a callback
// that connects lasts until one leg hangs up.
func talksFor(d time.Duration) aritest.Behavior {
	return aritest.Behavior{Answer: true, AnswerAfter: time.Second, HangupAfter: d}
}

// leavesVoicemail is a customer calling the main number and leaving a message in mailbox
// (an extension that is nobody's agent extension, so no owner hold applies).
func (p *e2ePBX) leavesVoicemail(from, mailbox string) *aritest.Call {
	return p.Inbound(aritest.InboundCall{From: from, To: "+31205550100", Steps: []aritest.Step{
		aritest.VoiceMail(mailbox+"@default", time.Second),
	}})
}

// ringsUnanswered is a customer whose call to ext rings out; the dialplan then hangs up.
func (p *e2ePBX) ringsUnanswered(from, ext string) *aritest.Call {
	p.SetEndpoint("PJSIP/"+ext, aritest.Rings())
	return p.Inbound(aritest.InboundCall{From: from, To: "+31205550100", Steps: []aritest.Step{
		aritest.Dial("PJSIP/"+ext, time.Second, ""),
	}})
}

// ---- configuration ----

// e2eAgent is one agent; Shifts, when set, is the YAML flow mapping of its shifts.
type e2eAgent struct{ ID, Endpoint, Extension, Shifts string }

// e2eSettings are what a test may change in the daemon's configuration; e2eDefaults fills the
// rest with short durations, as the daemon runs in wall-clock time.
type e2eSettings struct {
	RedisAddr, ARIURL string
	Timezone          string
	VoicemailDeadline string
	MaxAttempts       int
	Agents            []e2eAgent
	// RateLimits, when set, is dialer.rate_limits as a YAML flow mapping.
	RateLimits string
	// LogLevel is log.level; "" → info.
	LogLevel string
}

func e2eDefaults(redisAddr string, pbx *e2ePBX, agents ...e2eAgent) e2eSettings {
	return e2eSettings{RedisAddr: redisAddr, ARIURL: pbx.URL(), Timezone: openAllDayZone(),
		VoicemailDeadline: "30m", MaxAttempts: 3, Agents: agents}
}

// openAllDayZone is a time zone in which the calling hours 00:00–23:59 are open now and for
// the next hour: UTC, unless UTC is in its last hour of the day.
func openAllDayZone() string {
	if (clock.Real{}).Now().UTC().Hour() == 23 {
		return "Etc/GMT+2" // UTC−2 (POSIX signs are inverted)
	}
	return "UTC"
}

var e2eConfigTemplate = template.Must(template.New("callbackd.yml").Parse(`
redis:
  addr: {{.RedisAddr}}
  key_prefix: callbackd
asterisk:
  - name: pbx
    url: {{.ARIURL}}
    username: callbackd
    password: callbackd-secret
    reconnect: {initial: 200ms, max: 1s}
detector:
  default_queue: support
queues:
  - name: support
    deadline: {voicemail: {{.VoicemailDeadline}}, unanswered_transfer: 30m}
    max_attempts: {{.MaxAttempts}}
    retry_backoff: 1s
    calling_hours: {timezone: {{.Timezone}}, days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "23:59"}
agents:
{{- range .Agents}}
  - {id: {{.ID}}, name: {{.ID}}, endpoint: {{.Endpoint}}, extension: "{{.Extension}}", queues: [support]{{if .Shifts}}, shifts: {{.Shifts}}{{end}}}
{{- end}}
dialer:
  customer_dial_template: PJSIP/{number}@provider
  caller_id: {number: "+31205550100", name: Acme}
  allow: ['\+31[1-9][0-9]{8}']
  agent_ring_timeout: 2s
  customer_ring_timeout: 3s
  agent_cooldown: 1m
  wrap_up: 0s
  lease: 3s
  shutdown_grace: 1s
  whisper: ["sound:callbackd-callback-for"]
{{- if .RateLimits}}
  rate_limits: {{.RateLimits}}
{{- end}}
http:
  listen: 127.0.0.1:0
log:
  level: {{or .LogLevel "info"}}
  format: json
`))

// writeE2EConfig writes the configuration file and returns its path.
func writeE2EConfig(t *testing.T, s e2eSettings) string {
	t.Helper()
	var b bytes.Buffer
	if err := e2eConfigTemplate.Execute(&b, s); err != nil {
		t.Fatalf("writing the configuration: %v", err)
	}
	path := filepath.Join(t.TempDir(), "callbackd.yml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatalf("writing the configuration: %v", err)
	}
	return path
}

// ---- the daemon process ----

// logLines collects a process's output line by line.
type logLines struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
}

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]string{}, l.lines...)
	if len(l.partial) > 0 {
		out = append(out, string(l.partial))
	}
	return out
}

// logEntry is one JSON log line of the daemon.
type logEntry map[string]any

func (e logEntry) str(key string) string {
	s, _ := e[key].(string)
	return s
}

// entries returns the log lines that are JSON objects.
func (l *logLines) entries() []logEntry {
	var out []logEntry
	for _, line := range l.all() {
		var e logEntry
		if json.Unmarshal([]byte(line), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// callbackdProcess is one run of `callbackd run -c FILE`.
type callbackdProcess struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	log    *logLines
	http   string // host:port of /metrics, /healthz, /readyz
	exited chan struct{}
	code   int
}

// startCallbackd runs the daemon with the configuration at path and waits until it serves
// HTTP. The process is killed when the test ends if it is still running; its log is printed
// when the test failed.
func startCallbackd(t *testing.T, name, path string) *callbackdProcess {
	t.Helper()
	bin := callbackdBinary(t)
	ctx, cancel := context.WithCancel(context.Background())
	p := &callbackdProcess{t: t, name: name, log: &logLines{}, exited: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, bin, "run", "-c", path)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		defer close(p.exited)
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		default:
			p.code = -1
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-p.exited
		if t.Failed() {
			t.Logf("%s log:\n%s", name, strings.Join(p.log.all(), "\n"))
		}
	})
	eventually(t, name+" to serve HTTP", func() (bool, string) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited with code %d before serving HTTP", name, p.code)
		default:
		}
		for _, e := range p.log.entries() {
			if e.str("msg") == "serving metrics and health" && e.str("addr") != "" {
				p.http = e.str("addr")
				return true, ""
			}
		}
		return false, "no log line \"serving metrics and health\" yet"
	})
	return p
}

// waitReady waits until /readyz says Redis and Asterisk are connected and agents of the
// configuration are free, so that calls placed from now on are seen and dispatched.
func (p *callbackdProcess) waitReady(freeAgents int) {
	p.t.Helper()
	eventually(p.t, p.name+" to be ready", func() (bool, string) {
		status, body := p.get("/readyz")
		if status != http.StatusOK {
			return false, fmt.Sprintf("/readyz %d %s", status, body)
		}
		free := p.metric("callbackd_agents", map[string]string{"state": "free"})
		return free == float64(freeAgents), fmt.Sprintf("%v agents free, want %d", free, freeAgents)
	})
}

// terminate sends SIGTERM and returns the exit code once the process has exited.
func (p *callbackdProcess) terminate() int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("sending SIGTERM to %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(e2eGuard):
		p.t.Fatalf("%s did not exit after SIGTERM", p.name)
	}
	return p.code
}

// get fetches a path of the daemon's HTTP endpoint.
func (p *callbackdProcess) get(path string) (int, string) {
	p.t.Helper()
	resp, err := http.Get("http://" + p.http + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(body)
}

// metric scrapes /metrics and returns the value of the series name whose labels include
// labels; NaN when there is no such series.
func (p *callbackdProcess) metric(name string, labels map[string]string) float64 {
	p.t.Helper()
	status, body := p.get("/metrics")
	if status != http.StatusOK {
		p.t.Fatalf("GET /metrics: %d %s", status, body)
	}
	v, ok := findSample(body, name, labels)
	if !ok {
		return math.NaN()
	}
	return v
}

// findSample reads the Prometheus text format: `name{k="v",...} value` lines.
func findSample(text, name string, labels map[string]string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		series, value := line[:sp], line[sp+1:]
		got := map[string]string{}
		metric := series
		if i := strings.IndexByte(series, '{'); i >= 0 {
			metric = series[:i]
			got = parseLabels(strings.TrimSuffix(series[i+1:], "}"))
		}
		if metric != name {
			continue
		}
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		return f, err == nil
	}
	return 0, false
}

// parseLabels reads k="v",k2="v2" (values of callbackd's metrics hold no quotes or commas).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// ---- Redis ----

// e2eRedis is the test's own redis-server and the promise store on it, read the way the
// daemon writes it (key prefix "callbackd", queue "support").
type e2eRedis struct {
	srv   *redistest.Server
	rdb   *redis.Client
	store *queue.Store
}

func startE2ERedis(t *testing.T) *e2eRedis {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	rdb := srv.Client()
	store, err := queue.New(rdb, queue.Options{Prefix: "callbackd", Queues: []string{e2eQueue}})
	if err != nil {
		t.Fatalf("opening the promise store: %v", err)
	}
	return &e2eRedis{srv: srv, rdb: rdb, store: store}
}

func (r *e2eRedis) promises(t *testing.T) []queue.Job {
	t.Helper()
	jobs, err := r.store.List(context.Background(), e2eQueue, queue.ListOptions{})
	if err != nil {
		t.Fatalf("listing promises: %v", err)
	}
	return jobs
}

// waitPromise waits until the queue holds exactly one promise and cond holds for it.
func (r *e2eRedis) waitPromise(t *testing.T, what string, cond func(queue.Job) bool) queue.Job {
	t.Helper()
	var job queue.Job
	eventually(t, what, func() (bool, string) {
		jobs := r.promises(t)
		if len(jobs) != 1 {
			return false, fmt.Sprintf("%d promises", len(jobs))
		}
		job = jobs[0]
		return cond(job), describeJob(job)
	})
	return job
}

func describeJob(j queue.Job) string {
	var hist []string
	for _, h := range j.History {
		hist = append(hist, h.Result+" ("+h.Detail+")")
	}
	return fmt.Sprintf("promise %s: %s, attempts %d/%d, history [%s]", j.ID, j.State, j.Attempts, j.MaxAttempts, strings.Join(hist, "; "))
}

func inState(s queue.State) func(queue.Job) bool {
	return func(j queue.Job) bool { return j.State == s }
}

// reservations lists the agent reservation keys in Redis.
func (r *e2eRedis) reservations(t *testing.T) []string {
	t.Helper()
	keys, err := r.rdb.Keys(context.Background(), "callbackd:agent:*:reservation").Result()
	if err != nil {
		t.Fatalf("reading agent reservations: %v", err)
	}
	return keys
}

// ---- waiting ----

// eventually polls cond until it holds; the guard only stops a hang, and the failure says
// what cond last saw.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	guard := time.After(e2eGuard)
	for {
		ok, status := cond()
		if ok {
			return
		}
		select {
		case <-guard:
			t.Fatalf("gave up waiting for %s: %s", what, status)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logged reports whether a log line's message contains msg and its fields have the values
// given.
func (p *callbackdProcess) logged(msg string, fields map[string]string) bool {
	for _, e := range p.log.entries() {
		if !strings.Contains(e.str("msg"), msg) {
			continue
		}
		match := true
		for k, v := range fields {
			if e.str(k) != v {
				match = false
			}
		}
		if match {
			return true
		}
	}
	return false
}

// loggedAll returns the log lines whose message is msg and whose fields have the values given.
func (p *callbackdProcess) loggedAll(msg string, fields map[string]string) []logEntry {
	var out []logEntry
	for _, e := range p.log.entries() {
		match := e.str("msg") == msg
		for k, v := range fields {
			match = match && e.str(k) == v
		}
		if match {
			out = append(out, e)
		}
	}
	return out
}

// runCallbackdToExit runs the binary with args until it exits by itself and returns its exit
// code and everything it wrote.
func runCallbackdToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eGuard)
	defer cancel()
	out, err := exec.CommandContext(ctx, callbackdBinary(t), args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("running callbackd %v: %v\n%s", args, err, out)
	return 0, ""
}
