package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callbackd/callbackd/api"
	"github.com/callbackd/callbackd/dialer"
)

// agents is a pool of two agents, ria and bob, that knows no one else.
type agents struct {
	mu     sync.Mutex
	paused map[string]bool
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

type answer struct {
	code   int
	header http.Header
	body   string
}

func call(t *testing.T, srv *httptest.Server, method, path, token string) answer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return answer{resp.StatusCode, resp.Header, string(body)}
}

func TestProbesAndMetrics(t *testing.T) {
	var problems []string
	srv, _ := serve(t, "", &problems)
	if a := call(t, srv, "GET", "/healthz", ""); a.code != 200 || a.body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", a.code, a.body)
	}
	if a := call(t, srv, "GET", "/readyz", ""); a.code != 200 || a.body != "ready\n" {
		t.Errorf("/readyz = %d %q, want 200 ready", a.code, a.body)
	}
	problems = []string{"redis: connection refused", "asterisk pbx: not connected"}
	if a := call(t, srv, "GET", "/readyz", ""); a.code != 503 || a.body != "redis: connection refused\nasterisk pbx: not connected\n" {
		t.Errorf("/readyz with problems = %d %q, want 503 and one line per problem", a.code, a.body)
	}
	if a := call(t, srv, "GET", "/metrics", ""); a.code != 200 || !strings.Contains(a.body, "callbackd_test_promises_total 3") {
		t.Errorf("/metrics = %d without the gathered counter:\n%s", a.code, a.body)
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
		got := call(t, srv, step.method, step.path, "")
		if got.code != step.code || (step.body != "" && got.body != step.body) {
			t.Errorf("%s %s = %d %q, want %d %q", step.method, step.path, got.code, got.body, step.code, step.body)
		}
		if a.paused["ria"] != step.paused {
			t.Errorf("after %s %s ria paused = %v, want %v", step.method, step.path, a.paused["ria"], step.paused)
		}
	}
	got := call(t, srv, "GET", "/agents", "")
	var list []dialer.AgentView
	if err := json.Unmarshal([]byte(got.body), &list); err != nil || got.code != 200 || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /agents = %d %s %q (%v)", got.code, got.header.Get("Content-Type"), got.body, err)
	}
	if len(list) != 2 || list[0].ID != "bob" || list[1].ID != "ria" || list[1].State != dialer.AgentFree {
		t.Errorf("GET /agents = %+v, want bob and ria, free", list)
	}
}

func TestATokenGuardsEverythingButHealthz(t *testing.T) {
	srv, _ := serve(t, "s3cret", new([]string))
	for _, tc := range []struct {
		method, path, token string
		code                int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", "wrong", 401},
		{"GET", "/metrics", "s3cret", 200},
		{"GET", "/readyz", "", 401},
		{"GET", "/agents", "", 401},
		{"GET", "/agents", "s3cret", 200},
		{"POST", "/agents/ria/pause", "s3cret2", 401},
	} {
		a := call(t, srv, tc.method, tc.path, tc.token)
		if a.code != tc.code {
			t.Errorf("%s %s with token %q = %d, want %d", tc.method, tc.path, tc.token, a.code, tc.code)
		}
		if tc.code == 401 && a.header.Get("WWW-Authenticate") != `Bearer realm="callbackd"` {
			t.Errorf("%s %s refused without a WWW-Authenticate challenge: %q", tc.method, tc.path, a.header.Get("WWW-Authenticate"))
		}
	}
}
