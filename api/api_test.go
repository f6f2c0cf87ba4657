package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callbackd/callbackd/api"
	"github.com/callbackd/callbackd/api/apitest"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/queue"
)

// agents is a pool of two agents, ria and bob, that knows no one else.
type agents struct {
	mu       sync.Mutex
	paused   map[string]bool
	presence map[string]queue.PresenceState
}

func newAgents() *agents { return &agents{paused: map[string]bool{"ria": false, "bob": false}} }

func (a *agents) Agents() []dialer.AgentView {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []dialer.AgentView
	for _, id := range []string{"bob", "ria"} {
		state := dialer.AgentFree
		if a.paused[id] {
			state = dialer.AgentPaused
		}
		out = append(out, dialer.AgentView{ID: id, State: state})
	}
	return out
}

func (a *agents) SetPaused(id string, paused bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.paused[id]; !ok {
		return fmt.Errorf("%w %q", dialer.ErrUnknownAgent, id)
	}
	a.paused[id] = paused
	return nil
}

func (a *agents) SetPresence(_ context.Context, id string, state queue.PresenceState, _ string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.paused[id]; !ok {
		return fmt.Errorf("%w %q", dialer.ErrUnknownAgent, id)
	}
	if a.presence == nil {
		a.presence = map[string]queue.PresenceState{}
	}
	a.presence[id] = state
	return nil
}

func TestAgentsLogInAndOut(t *testing.T) {
	srv, a := serve(t, "", new([]string))
	for _, step := range []struct {
		method, path string
		code         int
		body         string
		presence     queue.PresenceState
	}{
		{"POST", "/agents/bob/logout", 204, "", queue.PresenceLoggedOut},
		{"POST", "/agents/bob/login", 204, "", queue.PresenceLoggedIn},
		{"POST", "/agents/nobody/login", 404, `{"error":"unknown agent \"nobody\""}` + "\n", queue.PresenceLoggedIn},
		{"GET", "/agents/bob/logout", 405, "", queue.PresenceLoggedIn},
	} {
		got := apitest.Call(t, srv, step.method, step.path, "")
		if got.Code != step.code || (step.body != "" && got.Body != step.body) {
			t.Errorf("%s %s = %d %q, want %d %q", step.method, step.path, got.Code, got.Body, step.code, step.body)
		}
		a.mu.Lock()
		if a.presence["bob"] != step.presence {
			t.Errorf("after %s %s bob is %q, want %q", step.method, step.path, a.presence["bob"], step.presence)
		}
		a.mu.Unlock()
	}
}

// serve runs the API on a real loopback listener; problems is what readiness reports.
func serve(t *testing.T, token string, problems *[]string) (*httptest.Server, *agents) {
	t.Helper()
	reg := prometheus.NewRegistry()
	made := prometheus.NewCounter(prometheus.CounterOpts{Name: "callbackd_test_promises_total", Help: "test"})
	reg.MustRegister(made)
	made.Add(3)
	a := newAgents()
	srv := httptest.NewServer(api.New(api.Options{Token: token, Gatherer: reg, Registerer: reg, Agents: a,
		Ready: func(context.Context) []string { return *problems }}))
	t.Cleanup(srv.Close)
	return srv, a
}

// A Redis that may lose promises does not make the daemon unready, but /readyz says so, under
// the verdict, whatever it is.
func TestReadinessShowsWarningsUnderItsVerdict(t *testing.T) {
	var problems []string
	warnings := []string{"redis: appendonly is off"}
	srv := httptest.NewServer(api.New(api.Options{Gatherer: prometheus.NewRegistry(), Agents: newAgents(),
		Ready: func(context.Context) []string { return problems }, Warnings: func() []string { return warnings }}))
	t.Cleanup(srv.Close)
	if a := apitest.Call(t, srv, "GET", "/readyz", ""); a.Code != 200 || a.Body != "ready\nwarning: redis: appendonly is off\n" {
		t.Errorf("/readyz = %d %q, want 200 ready and the warning", a.Code, a.Body)
	}
	problems = []string{"asterisk pbx: not connected"}
	if a := apitest.Call(t, srv, "GET", "/readyz", ""); a.Code != 503 || a.Body != "asterisk pbx: not connected\nwarning: redis: appendonly is off\n" {
		t.Errorf("/readyz = %d %q, want 503, the problem and the warning", a.Code, a.Body)
	}
}

func TestProbesAndMetrics(t *testing.T) {
	var problems []string
	srv, _ := serve(t, "", &problems)
	if a := apitest.Call(t, srv, "GET", "/healthz", ""); a.Code != 200 || a.Body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", a.Code, a.Body)
	}
	if a := apitest.Call(t, srv, "GET", "/readyz", ""); a.Code != 200 || a.Body != "ready\n" {
		t.Errorf("/readyz = %d %q, want 200 ready", a.Code, a.Body)
	}
	problems = []string{"redis: connection refused", "asterisk pbx: not connected"}
	if a := apitest.Call(t, srv, "GET", "/readyz", ""); a.Code != 503 || a.Body != "redis: connection refused\nasterisk pbx: not connected\n" {
		t.Errorf("/readyz with problems = %d %q, want 503 and one line per problem", a.Code, a.Body)
	}
	if a := apitest.Call(t, srv, "GET", "/metrics", ""); a.Code != 200 || !strings.Contains(a.Body, "callbackd_test_promises_total 3") {
		t.Errorf("/metrics = %d without the gathered counter:\n%s", a.Code, a.Body)
	}
}

func TestAgentsCanBeListedPausedAndResumed(t *testing.T) {
	srv, a := serve(t, "", new([]string))
	for _, step := range []struct {
		method, path string
		code         int
		body         string
		paused       bool
	}{
		{"POST", "/agents/ria/pause", 204, "", true},
		{"POST", "/agents/ria/resume", 204, "", false},
		{"POST", "/agents/nobody/pause", 404, `{"error":"unknown agent \"nobody\""}` + "\n", false},
		{"GET", "/agents/ria/pause", 405, "", false},
	} {
		got := apitest.Call(t, srv, step.method, step.path, "")
		if got.Code != step.code || (step.body != "" && got.Body != step.body) {
			t.Errorf("%s %s = %d %q, want %d %q", step.method, step.path, got.Code, got.Body, step.code, step.body)
		}
		if a.paused["ria"] != step.paused {
			t.Errorf("after %s %s ria paused = %v, want %v", step.method, step.path, a.paused["ria"], step.paused)
		}
	}
	got := apitest.Call(t, srv, "GET", "/agents", "")
	var list []dialer.AgentView
	if err := json.Unmarshal([]byte(got.Body), &list); err != nil || got.Code != 200 || got.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /agents = %d %s %q (%v)", got.Code, got.Header.Get("Content-Type"), got.Body, err)
	}
	if len(list) != 2 || list[0].ID != "bob" || list[1].ID != "ria" || list[1].State != dialer.AgentFree {
		t.Errorf("GET /agents = %+v, want bob and ria, free", list)
	}
}

func TestATokenGuardsEverythingButTheProbes(t *testing.T) {
	srv, _ := serve(t, "s3cret", new([]string))
	for _, tc := range []struct {
		method, path, token string
		code                int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", "wrong", 401},
		{"GET", "/metrics", "s3cret", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/readyz", "wrong", 200},
		{"GET", "/agents", "", 401},
		{"GET", "/agents", "s3cret", 200},
		{"POST", "/agents/ria/pause", "s3cret2", 401},
	} {
		a := apitest.Call(t, srv, tc.method, tc.path, tc.token)
		if a.Code != tc.code {
			t.Errorf("%s %s with token %q = %d, want %d", tc.method, tc.path, tc.token, a.Code, tc.code)
		}
		if tc.code == 401 && a.Header.Get("WWW-Authenticate") != `Bearer realm="callbackd"` {
			t.Errorf("%s %s refused without a WWW-Authenticate challenge: %q", tc.method, tc.path, a.Header.Get("WWW-Authenticate"))
		}
	}
}

// A readiness probe cannot send a token (a kubelet, a load balancer), so /readyz answers it —
// but only with its verdict: the details name hosts, ports and causes, and are for whoever
// holds the token.
func TestReadinessTellsAProbeWithoutTheTokenOnlyItsVerdict(t *testing.T) {
	const token = "0123456789abcdef-token"
	problems := []string{"redis: connection refused (dial tcp 10.0.0.7:6379)"}
	srv, _ := serve(t, token, &problems)
	for _, tc := range []struct {
		name, token string
		code        int
		body        string
	}{
		{"not ready, no token", "", 503, "not ready\n"},
		{"not ready, a wrong token", "guess", 503, "not ready\n"},
		{"not ready, the token", token, 503, "redis: connection refused (dial tcp 10.0.0.7:6379)\n"},
	} {
		if a := apitest.Call(t, srv, "GET", "/readyz", tc.token); a.Code != tc.code || a.Body != tc.body {
			t.Errorf("%s: /readyz = %d %q, want %d %q", tc.name, a.Code, a.Body, tc.code, tc.body)
		}
	}
	problems = nil
	if a := apitest.Call(t, srv, "GET", "/readyz", ""); a.Code != 200 || a.Body != "ready\n" {
		t.Errorf("ready, no token: /readyz = %d %q, want 200 ready", a.Code, a.Body)
	}
}

// Probes and the scrape only read: any other method is refused, with or without the token,
// and with a token every write needs it even from loopback (httptest listens on 127.0.0.1).
func TestProbesAnswerOnlyGETAndHEADAndWritesNeedTheToken(t *testing.T) {
	const token = "0123456789abcdef-token"
	srv, a := serve(t, token, new([]string))
	for _, tc := range []struct {
		method, path, token string
		code                int
	}{
		{"HEAD", "/healthz", "", 200},
		{"HEAD", "/metrics", token, 200},
		{"POST", "/healthz", "", 405},
		{"DELETE", "/healthz", "", 405},
		{"POST", "/metrics", token, 405},
		{"PUT", "/metrics", token, 405},
		{"POST", "/readyz", token, 405},
		{"POST", "/agents/ria/pause", "", 401},
		{"POST", "/agents/ria/resume", "", 401},
		{"POST", "/agents/ria/pause", token, 204},
	} {
		got := apitest.Call(t, srv, tc.method, tc.path, tc.token)
		if got.Code != tc.code {
			t.Errorf("%s %s with token %q = %d, want %d", tc.method, tc.path, tc.token, got.Code, tc.code)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.paused["ria"] {
		t.Error("the pause with the token did not take effect")
	}
}
