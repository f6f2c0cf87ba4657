package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
)

// PresenceState is whether an agent wants callbacks now, as the agent (or a supervisor) said.
type PresenceState string

// The presence states. An agent with none recorded is logged in: a configured agent with a
// registered phone takes callbacks, as before presence existed.
const (
	PresenceLoggedIn  PresenceState = "logged_in"
	PresenceLoggedOut PresenceState = "logged_out"
	PresencePaused    PresenceState = "paused"
)

// PresenceStates lists every presence state.
func PresenceStates() []PresenceState {
	return []PresenceState{PresenceLoggedIn, PresenceLoggedOut, PresencePaused}
}

// Presence is one agent's recorded presence.
type Presence struct {
	State PresenceState `json:"state"`
	Since time.Time     `json:"since,omitzero"`
	By    string        `json:"by,omitempty"`
}

// Presences keeps agents' presence in Redis, so every daemon sharing it rings the same agents
// and a restart forgets nobody's logout.
//
// Keys: <prefix>:agent:<id>:presence (hash: state, since, by); changes are published on
// <prefix>:presence with the agent id. Like reservations they belong to no queue and carry no
// hash tag; each write touches one key, so it runs on Redis Cluster as well.
type Presences struct {
	rdb    redis.UniversalClient
	prefix string
	clk    clock.Clock
	set    *redis.Script
	err    error
}

// NewPresences returns presences kept in rdb under prefix (DefaultPrefix when empty); a bad
// prefix or a nil client is reported, with ErrInvalid, by every call.
func NewPresences(rdb redis.UniversalClient, prefix string, clk clock.Clock) *Presences {
	p := &Presences{rdb: rdb, clk: clk}
	if p.clk == nil {
		p.clk = clock.Real{}
	}
	p.prefix, p.err = standaloneKeys(rdb, prefix)
	var err error
	if p.set, err = standaloneScript("presence_set"); err != nil && p.err == nil {
		p.err = err
	}
	return p
}

func (p *Presences) key(agent string) string { return p.prefix + ":agent:" + agent + ":presence" }

func (p *Presences) channel() string { return p.prefix + ":presence" }

func (p *Presences) checkAgent(agent string) error {
	if p.err != nil {
		return p.err
	}
	return checkName("agent", agent)
}

// Set records agent's presence, said by by, and returns the previous state ("" when none).
func (p *Presences) Set(ctx context.Context, agent string, state PresenceState, by string) (PresenceState, error) {
	what := fmt.Sprintf("setting presence of agent %q to %s", agent, state)
	if err := p.checkAgent(agent); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if !slices.Contains(PresenceStates(), state) {
		return "", fmt.Errorf("%s: %w: unknown presence %q (want one of %v)", what, ErrInvalid, state, PresenceStates())
	}
	if err := CheckText("by", by); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	prev, err := p.set.Run(ctx, p.rdb, []string{p.key(agent)}, agent, string(state), millis(p.clk.Now()), by, p.channel()).Text()
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return PresenceState(prev), nil
}

// Get reads the presence of the agents; an agent with none recorded is missing from the map.
func (p *Presences) Get(ctx context.Context, agents []string) (map[string]Presence, error) {
	what := fmt.Sprintf("reading the presence of %d agents", len(agents))
	for _, a := range agents {
		if err := p.checkAgent(a); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	pipe := p.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(agents))
	for i, a := range agents {
		cmds[i] = pipe.HMGet(ctx, p.key(a), "state", "since", "by")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := map[string]Presence{}
	for i, c := range cmds {
		v := c.Val()
		state, _ := v[0].(string)
		if state == "" {
			continue
		}
		since, _ := v[1].(string)
		by, _ := v[2].(string)
		t, err := parseMillis(since)
		if err != nil {
			return nil, fmt.Errorf("%s: agent %s since %q: %w", what, agents[i], since, err)
		}
		out[agents[i]] = Presence{State: PresenceState(state), Since: t, By: by}
	}
	return out, nil
}

// Changes names each agent whose presence any daemon set, until ctx ends (then it closes).
// Changes published while Redis was unreachable are lost: read Get again after a reconnect.
func (p *Presences) Changes(ctx context.Context) <-chan string {
	out := make(chan string, 16)
	if p.err != nil {
		close(out)
		return out
	}
	relay(ctx, p.rdb.Subscribe(ctx, p.channel()), func(m *redis.Message) {
		select {
		case out <- m.Payload:
		case <-ctx.Done():
		}
	}, func() { close(out) })
	return out
}
