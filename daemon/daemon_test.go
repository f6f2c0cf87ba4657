package daemon_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/api/apitest"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// daemonFor builds the daemon of the demo config against pbx and a real redis-server,
// serving nothing itself: the tests serve its HTTP surface on a listener of their own, which
// outlives Run.
func daemonFor(t *testing.T, pbx *aritest.Server, clk clock.Clock, token string) (*daemon.Daemon, redis.UniversalClient, context.CancelFunc, chan error) {
	t.Helper()
	cfg, err := config.Parse([]byte(demo.ConfigYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	cfg.HTTP.Token = config.Secret(token)
	rdb := redistest.Start(t, redistest.Options{}).Client()
	d, cancel, ran := runDaemon(t, cfg, rdb, clk)
	return d, rdb, cancel, ran
}

// runDaemon builds the daemon of cfg and runs it until the test ends.
func runDaemon(t *testing.T, cfg *config.Config, rdb redis.UniversalClient, clk clock.Clock) (*daemon.Daemon, context.CancelFunc, chan error) {
	t.Helper()
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clk, Logger: zap.NewNop(), Instance: "test", Listen: "-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	return d, cancel, ran
}

// serve serves d's HTTP surface on a loopback listener of the test's own.
func serve(t *testing.T, d *daemon.Daemon) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, method, path, token string) (int, string) {
	t.Helper()
	a := apitest.Call(t, srv, method, path, token)
	return a.Code, a.Body
}

func TestHealthReadinessAndMetricsEndpoints(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	pbx.SetEndpoint("PJSIP/1001", aritest.Answers(time.Second))
	d, rdb, _, _ := daemonFor(t, pbx, clk, "")
	h := serve(t, d)

	if code, body := get(t, h, "GET", "/healthz", ""); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	daemontest.WaitUntil(t, "readiness", func() bool { code, _ := get(t, h, "GET", "/readyz", ""); return code == 200 })
	// The test's Redis runs without AOF, as a careless production one might.
	if _, body := get(t, h, "GET", "/readyz", ""); !strings.Contains(body, "warning: redis: appendonly is off") {
		t.Errorf("/readyz = %q; want it to warn that Redis runs without AOF", body)
	}

	_, metrics := get(t, h, "GET", "/metrics", "")
	for _, want := range []string{
		`callbackd_promises_created_total{queue="support",reason="voicemail"} 0`,
		`callbackd_promises_completed_total{outcome="kept",queue="reception"} 0`,
		`callbackd_call_attempts_total{leg="customer",queue="support",result="busy"} 0`,
		`callbackd_promises_open{queue="support",state="pending"} 0`,
		`callbackd_promise_kept_ratio{queue="support"} NaN`,
		`callbackd_agents{state="offline"}`,
		`callbackd_ari_connected{asterisk="fake-pbx"} 1`,
		`callbackd_promise_slack_seconds_bucket{queue="support",le="0"} 0`,
		`callbackd_time_to_callback_seconds_count{queue="support"} 0`,
		// No Build given: the binary's own build information (a test binary: version dev).
		`callbackd_build_info{goversion="go`,
		`version="dev"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Nobody of support is on duty (Bob is not registered, Anna is paused): a pending promise
	// there is at risk from the moment it is made.
	if code, body := get(t, h, "POST", "/agents/anna/pause", ""); code != 204 {
		t.Fatalf("pausing anna: %d %q", code, body)
	}
	now := clk.Now()
	if _, _, err := d.Store().Enqueue(context.Background(), queue.Request{Queue: "support", Number: "+31201234501",
		Reason: queue.ReasonVoicemail, Target: "1003", Deadline: now.Add(time.Hour), NotBefore: now, MaxAttempts: 3}); err != nil {
		t.Fatal(err)
	}
	_, metrics = get(t, h, "GET", "/metrics", "")
	for _, want := range []string{`callbackd_promises_at_risk{queue="support"} 1`, `callbackd_promises_at_risk{queue="reception"} 0`,
		`callbackd_promises_open{queue="support",state="pending"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Redis gone: not ready, and the answer says why.
	_ = rdb.Close()
	if code, body := get(t, h, "GET", "/readyz", ""); code != 503 || !strings.Contains(body, "redis") {
		t.Errorf("/readyz with Redis closed = %d %q, want 503 naming redis", code, body)
	}
	// /metrics still answers: the store-backed series are missing and the failure is counted.
	code, metrics := get(t, h, "GET", "/metrics", "")
	if code != 200 || strings.Contains(metrics, "callbackd_promises_open{") ||
		strings.Contains(metrics, "callbackd_store_scrape_errors_total 0\n") {
		t.Errorf("/metrics with Redis closed: %d, open-promise series present or no scrape error counted:\n%s", code, metrics)
	}
	if !strings.Contains(metrics, `callbackd_agents{state="free"}`) {
		t.Error("/metrics with Redis closed lost the agents, which do not come from Redis")
	}
}

func TestReadinessNamesTheAsteriskThatIsDown(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	d, _, _, _ := daemonFor(t, pbx, clk, "")
	h := serve(t, d)
	daemontest.WaitUntil(t, "readiness", func() bool { code, _ := get(t, h, "GET", "/readyz", ""); return code == 200 })
	pbx.Close()
	daemontest.WaitUntil(t, "not ready", func() bool { code, _ := get(t, h, "GET", "/readyz", ""); return code == 503 })
	if _, body := get(t, h, "GET", "/readyz", ""); !strings.Contains(body, "asterisk fake-pbx: not connected") {
		t.Errorf("/readyz body %q does not name the Asterisk", body)
	}
}

func TestAgentsCanBeListedPausedAndResumed(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	pbx.SetEndpoint("PJSIP/1001", aritest.Answers(time.Second))
	d, _, _, _ := daemonFor(t, pbx, clk, "")
	h := serve(t, d)
	state := func(id string) string {
		_, body := get(t, h, "GET", "/agents", "")
		var list []dialer.AgentView
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("GET /agents: %v in %q", err, body)
		}
		for _, a := range list {
			if a.ID == id {
				return a.State
			}
		}
		return "missing"
	}
	daemontest.WaitUntil(t, "ria free", func() bool { return state("ria") == dialer.AgentFree })
	for _, step := range []struct {
		method, path string
		code         int
		state        string
	}{
		{"POST", "/agents/ria/pause", 204, dialer.AgentPaused},
		{"POST", "/agents/ria/resume", 204, dialer.AgentFree},
		{"POST", "/agents/nobody/pause", 404, dialer.AgentFree},
		{"GET", "/agents/ria/pause", 405, dialer.AgentFree},
	} {
		if code, body := get(t, h, step.method, step.path, ""); code != step.code {
			t.Errorf("%s %s = %d %q, want %d", step.method, step.path, code, body, step.code)
		}
		if got := state("ria"); got != step.state {
			t.Errorf("after %s %s ria is %s, want %s", step.method, step.path, got, step.state)
		}
	}
}

func TestATokenGuardsEverythingButHealthz(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	d, _, _, _ := daemonFor(t, pbx, clk, "s3cret")
	h := serve(t, d)
	for _, tc := range []struct {
		path, token string
		code        int
	}{
		{"/healthz", "", 200},
		{"/metrics", "", 401},
		{"/metrics", "wrong", 401},
		{"/metrics", "s3cret", 200},
		{"/agents", "", 401},
		// The supervisor page signs in with a cookie of its own: its login form is open, the
		// rest needs the cookie, a bearer header is not one, and the API keeps the other paths.
		{"/", "", 200},
		{"/ui/board", "", 401},
		{"/ui/board", "s3cret", 401},
		{"/no/such/path", "", 401},
	} {
		if code, _ := get(t, h, "GET", tc.path, tc.token); code != tc.code {
			t.Errorf("GET %s with token %q = %d, want %d", tc.path, tc.token, code, tc.code)
		}
	}
}

func TestReadinessFailsOnceShutdownBegins(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	d, _, cancel, ran := daemonFor(t, pbx, clk, "")
	h := serve(t, d)
	daemontest.WaitUntil(t, "readiness", func() bool { code, _ := get(t, h, "GET", "/readyz", ""); return code == 200 })
	cancel()
	<-ran
	if code, body := get(t, h, "GET", "/readyz", ""); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz after the stop began = %d %q, want 503 saying it is shutting down", code, body)
	}
	ran <- nil // the cleanup waits for Run once more
}
