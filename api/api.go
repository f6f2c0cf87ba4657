// Package api is callbackd's HTTP surface: health and readiness for the service manager,
// /metrics for Prometheus, the agents' switches, and the admin API under /api/v1, behind one
// bearer-token check with roles. It knows the daemon only through the small interfaces
// below, so it can be tested without one.
package api

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
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
	// /healthz (a liveness probe carries no credentials); it has every role.
	Token string
	// Tokens are more bearer tokens, each with its roles (http.tokens).
	Tokens []Token
	// Admin, when set, serves the admin API's promise, queue and customer routes.
	Admin Admin
	// Events, when set, serves GET /api/v1/events.
	Events Events
	// Heartbeat is how often an idle event stream writes a comment; DefaultHeartbeat when zero.
	Heartbeat time.Duration
	// Clock is the daemon's clock (Retry-After, heartbeats); the real one when nil.
	Clock clock.Clock
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
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	tokens := o.tokens()
	mux := http.NewServeMux()
	probeRoutes(mux, o, tokens)
	agentRoutes(mux, o.Agents, o.Logger)
	v1Routes(mux, o)
	return authenticate(tokens, v1Unrouted(mux))
}

func (o Options) tokens() *Tokens { return ConfiguredTokens(o.Token, o.Tokens) }

// ConfiguredTokens are the tokens of the configuration: the single http.token (single, ""
// for none), which has every role, and the http.tokens entries with theirs. The supervisor
// page maps a token to its roles with the same.
func ConfiguredTokens(single string, tokens []Token) *Tokens {
	all := make([]Token, 0, len(tokens)+1)
	if single != "" {
		all = append(all, Token{Name: "http.token", Secret: single, Roles: config.Roles()})
	}
	return NewTokens(append(all, tokens...))
}
