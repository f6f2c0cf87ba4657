package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
)

// AgentHold is how long an agent is held back from callbacks: wrap-up after a callback that
// reached a customer, cooldown after a ring the agent did not answer. Zero: none.
type AgentHold struct {
	WrapUpUntil   time.Time `json:"wrap_up_until,omitzero"`
	CooldownUntil time.Time `json:"cooldown_until,omitzero"`
}

// AgentHolds keeps agents' wrap-up and cooldown in Redis, so a daemon sharing it does not ring
// an agent another daemon just held back, and a restart does not cut a hold short.
//
// Keys: <prefix>:agent:<id>:hold (hash: wrap_until, cool_until in ms of the callers' clock),
// expiring on Redis' clock when the later hold ends; changes are published on <prefix>:holds
// with the agent id. Like presence, no hash tag: each write touches one key.
type AgentHolds struct {
	rdb    redis.UniversalClient
	prefix string
	clk    clock.Clock
	set    *redis.Script
	err    error
}

// NewAgentHolds returns holds kept in rdb under prefix (DefaultPrefix when empty); a bad
// prefix or a nil client is reported, with ErrInvalid, by every call.
func NewAgentHolds(rdb redis.UniversalClient, prefix string, clk clock.Clock) *AgentHolds {
	h := &AgentHolds{rdb: rdb, clk: clk}
	if h.clk == nil {
		h.clk = clock.Real{}
	}
	h.prefix, h.err = standaloneKeys(rdb, prefix)
	var err error
	if h.set, err = standaloneScript("agent_hold"); err != nil && h.err == nil {
		h.err = err
	}
	return h
}

func (h *AgentHolds) key(agent string) string { return h.prefix + ":agent:" + agent + ":hold" }

func (h *AgentHolds) channel() string { return h.prefix + ":holds" }

func (h *AgentHolds) checkAgent(agent string) error {
	if h.err != nil {
		return h.err
	}
	return checkName("agent", agent)
}

// Hold holds agent back until the ends in hold, or longer if a hold already stored ends later.
func (h *AgentHolds) Hold(ctx context.Context, agent string, hold AgentHold) error {
	what := fmt.Sprintf("holding agent %q back", agent)
	if err := h.checkAgent(agent); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ms := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return millis(t)
	}
	if err := h.set.Run(ctx, h.rdb, []string{h.key(agent)}, agent, ms(hold.WrapUpUntil), ms(hold.CooldownUntil),
		millis(h.clk.Now()), h.channel()).Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Get reads the holds of the agents; an agent with none ahead is missing from the map. A hold
// that does not read back is left out and named in the error, the others are returned.
func (h *AgentHolds) Get(ctx context.Context, agents []string) (map[string]AgentHold, error) {
	what := fmt.Sprintf("reading the holds of %d agents", len(agents))
	for _, a := range agents {
		if err := h.checkAgent(a); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	pipe := h.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(agents))
	for i, a := range agents {
		cmds[i] = pipe.HMGet(ctx, h.key(a), "wrap_until", "cool_until")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !isNilOrWrongType(err) {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := map[string]AgentHold{}
	var bad []error
	for i, c := range cmds {
		if err := c.Err(); err != nil {
			bad = append(bad, fmt.Errorf("%w: hold of agent %s: %w", ErrInvalid, agents[i], err))
			continue
		}
		var hold AgentHold
		ok := true
		for j, dst := range []*time.Time{&hold.WrapUpUntil, &hold.CooldownUntil} {
			raw, _ := c.Val()[j].(string)
			t, err := parseMillis(raw)
			if raw != "" && err != nil {
				bad = append(bad, fmt.Errorf("%w: hold of agent %s: %q is not a time in ms", ErrInvalid, agents[i], raw))
				ok = false
				break
			}
			*dst = t
		}
		if ok && (!hold.WrapUpUntil.IsZero() || !hold.CooldownUntil.IsZero()) {
			out[agents[i]] = hold
		}
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("%s: %w", what, errors.Join(bad...))
	}
	return out, nil
}

// Changes names each agent a daemon held back, until ctx ends (then it closes). Changes
// published while Redis was unreachable are lost: read Get again after a reconnect.
func (h *AgentHolds) Changes(ctx context.Context) <-chan string {
	out := make(chan string, 16)
	if h.err != nil {
		close(out)
		return out
	}
	relay(ctx, h.rdb.Subscribe(ctx, h.channel()), func(m *redis.Message) {
		select {
		case out <- m.Payload:
		case <-ctx.Done():
		}
	}, func() { close(out) })
	return out
}
