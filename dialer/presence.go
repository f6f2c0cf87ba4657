package dialer

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// PresenceStore is where agents' presence is kept for every daemon (queue.Presences).
type PresenceStore interface {
	Set(ctx context.Context, agent string, state queue.PresenceState, by string) (queue.PresenceState, error)
	Get(ctx context.Context, agents []string) (map[string]queue.Presence, error)
	Changes(ctx context.Context) <-chan string
}

// UsePresence makes the pool keep presence in store (shared by daemons, kept across restarts)
// rather than in this daemon's memory alone. Call before FollowPresence and SetPresence.
func (p *Pool) UsePresence(store PresenceStore) {
	p.mu.Lock()
	p.presences = store
	p.mu.Unlock()
}

// SetPresence logs an agent in or out or pauses them, said by by. It is stored first: a
// presence Redis did not take is refused, not kept in one daemon's memory only.
func (p *Pool) SetPresence(ctx context.Context, id string, state queue.PresenceState, by string) error {
	p.mu.Lock()
	_, known := p.byID[id]
	store := p.presences
	p.mu.Unlock()
	if !known {
		return fmt.Errorf("%w %q", ErrUnknownAgent, id)
	}
	if store != nil {
		if _, err := store.Set(ctx, id, state, by); err != nil {
			return fmt.Errorf("setting the presence of agent %s: %w", id, err)
		}
	}
	return p.with(id, func(a *agent) { a.presence, a.presenceSets = state, a.presenceSets+1 })
}

// presenceSetsOf is each agent's count of presences set through this daemon.
func (p *Pool) presenceSetsOf(ids []string) map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]uint64, len(ids))
	for _, id := range ids {
		if a := p.byID[id]; a != nil {
			out[id] = a.presenceSets
		}
	}
	return out
}

// presenceReload bounds how stale a presence set by another daemon can be when its
// notification was lost (Redis restarted, the subscription reconnecting).
const presenceReload = time.Minute

// FollowPresence reads every agent's presence from the store and follows the changes any
// daemon makes, until ctx ends.
func (p *Pool) FollowPresence(ctx context.Context) error {
	p.mu.Lock()
	store := p.presences
	ids := make([]string, 0, len(p.agents))
	for _, a := range p.agents {
		ids = append(ids, a.cfg.ID)
	}
	p.mu.Unlock()
	if store == nil || len(ids) == 0 {
		return nil
	}
	changes := store.Changes(ctx)
	load := func(ids []string) {
		before := p.presenceSetsOf(ids)
		got, err := store.Get(ctx, ids)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("reading agent presence failed; agents keep the presence they had", zap.Error(err))
			}
			return
		}
		for _, id := range ids {
			state := got[id].State
			_ = p.with(id, func(a *agent) {
				// Set here while the read was on its way: that is newer than what was read.
				if a.presenceSets == before[id] {
					a.presence = state
				}
			})
		}
	}
	load(ids)
	for {
		select {
		case <-ctx.Done():
			return nil
		case id, ok := <-changes:
			if !ok {
				return nil
			}
			if _, known := p.byID[id]; known {
				load([]string{id})
			}
		case <-p.clk.After(presenceReload):
			load(ids)
		}
	}
}
