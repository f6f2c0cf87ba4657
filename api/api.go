// Package api is callbackd's HTTP surface: health and readiness for the service manager,
// /metrics for Prometheus and the agents' pause switch, behind one bearer-token check. It
// knows the daemon only through the small interfaces below, so it can be tested without one.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/queue"
)

// Agents is the agent pool as the API sees it.
type Agents interface {
	Agents() []dialer.AgentView
	SetPaused(id string, paused bool) error
	// SetPresence logs an agent in or out (queue.PresenceLoggedIn, PresenceLoggedOut).
	SetPresence(ctx context.Context, id string, state queue.PresenceState, by string) error
}

// Readiness returns what keeps the daemon from doing its work; none means ready.
type Readiness func(ctx context.Context) []string

// Options is what the HTTP surface serves.
type Options struct {
	// Token, when set, must come as "Authorization: Bearer <token>" on every path but
	// /healthz (a liveness probe carries no credentials).
	Token string
	// Gatherer is what /metrics serves.
	Gatherer prometheus.Gatherer
	// Registerer, when set, counts the /metrics handler's own failures.
	Registerer prometheus.Registerer
	Ready      Readiness
	// Warnings, when set, lists what the daemon found at start that does not stop it working
	// but may lose promises (Redis' eviction policy, AOF off); /readyz shows them.
	Warnings func() []string
	Agents   Agents
	Logger   *zap.Logger
}

// New returns the handler of every route.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	mux := http.NewServeMux()
	probeRoutes(mux, o)
	agentRoutes(mux, o.Agents, o.Logger)
	// The admin API goes under /api/v1, registered here like the groups above.
	if o.Token == "" {
		return mux
	}
	return requireToken(o.Token, mux)
}

// requireToken answers 401 to a request without the token. The comparison takes as long
// whatever the guess, so the token cannot be found a byte at a time.
// The probes are exempt: a kubelet or a load balancer cannot send a token, and /readyz tells
// them only its verdict (see authorized).
func requireToken(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !authorized(token, r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="callbackd"`)
			http.Error(w, "missing or wrong bearer token (http.token)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized reports whether r carries the token; with no token configured everyone is (the
// listener is then loopback only, which validation enforces).
func authorized(token string, r *http.Request) bool {
	if token == "" {
		return true
	}
	got := []byte(r.Header.Get("Authorization"))
	return subtle.ConstantTimeCompare(got, []byte("Bearer "+token)) == 1
}

// statusOf is the one place an error becomes an HTTP status, so every route answers the
// same failure the same way.
func statusOf(err error) int {
	switch {
	case errors.Is(err, dialer.ErrUnknownAgent):
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

// writeError answers err as a JSON object {"error": "..."} with its status.
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
