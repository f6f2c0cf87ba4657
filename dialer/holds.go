package dialer

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// HoldStore is where agents' wrap-up and cooldown are kept for every daemon (queue.AgentHolds).
type HoldStore interface {
	Hold(ctx context.Context, agent string, hold queue.AgentHold) error
	Get(ctx context.Context, agents []string) (map[string]queue.AgentHold, error)
	Changes(ctx context.Context) <-chan string
}

// holdWrite bounds how long the end of a callback waits for Redis to take the agent's hold;
// past it the hold is this daemon's only (logged), as before holds were shared.
const holdWrite = 2 * time.Second

// UseHolds makes the pool share wrap-up and cooldown through store: a hold set here is seen
// by every daemon sharing it, and one set by any daemon (or before a restart) holds the agent
// back here. Call before LoadHolds and FollowHolds.
func (p *Pool) UseHolds(store HoldStore) {
	p.mu.Lock()
	p.holds = store
	p.mu.Unlock()
}

func (p *Pool) holdStore() (HoldStore, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.agents))
	for _, a := range p.agents {
		ids = append(ids, a.cfg.ID)
	}
	return p.holds, ids
}

// holdFor is the hold a wrap-up and a cooldown (each when > 0) starting now make.
func (p *Pool) holdFor(wrapUp, cooldown time.Duration) queue.AgentHold {
	now := p.clk.Now()
	var hold queue.AgentHold
	if wrapUp > 0 {
		hold.WrapUpUntil = now.Add(wrapUp)
	}
	if cooldown > 0 {
		hold.CooldownUntil = now.Add(cooldown)
	}
	return hold
}

// shareHold stores agent id's hold for the other daemons.
func (p *Pool) shareHold(id string, hold queue.AgentHold) {
	store, _ := p.holdStore()
	if store == nil || (hold.WrapUpUntil.IsZero() && hold.CooldownUntil.IsZero()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), holdWrite)
	defer cancel()
	if err := store.Hold(ctx, id, hold); err != nil {
		p.log.Warn("sharing the agent's wrap-up or cooldown failed; other daemons may ring them before it ends",
			zap.String("agent", id), zap.Error(err))
	}
}

// applyHolds holds agents back as the store says; a hold is only ever lengthened.
func (p *Pool) applyHolds(got map[string]queue.AgentHold) {
	for id, h := range got {
		_ = p.with(id, func(a *agent) {
			a.wrapUntil = laterOf(a.wrapUntil, h.WrapUpUntil)
			a.coolUntil = laterOf(a.coolUntil, h.CooldownUntil)
		})
	}
}

// LoadHolds reads every agent's hold from the store: the daemon calls it before dispatching,
// so a restart rings nobody still in wrap-up or cooldown.
func (p *Pool) LoadHolds(ctx context.Context) error {
	store, ids := p.holdStore()
	if store == nil || len(ids) == 0 {
		return nil
	}
	got, err := store.Get(ctx, ids)
	p.applyHolds(got)
	return err
}

// FollowHolds applies the holds any daemon sets, until ctx ends; it reads them all again every
// minute, for notifications lost while Redis was unreachable.
func (p *Pool) FollowHolds(ctx context.Context) error {
	store, ids := p.holdStore()
	if store == nil || len(ids) == 0 {
		return nil
	}
	changes := store.Changes(ctx)
	load := func(ids []string) {
		got, err := store.Get(ctx, ids)
		if err != nil && ctx.Err() == nil {
			p.log.Warn("reading agents' wrap-up and cooldown failed; agents keep the holds they had", zap.Error(err))
		}
		p.applyHolds(got)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case id, ok := <-changes:
			if !ok {
				return nil
			}
			p.mu.Lock()
			_, known := p.byID[id]
			p.mu.Unlock()
			if known {
				load([]string{id})
			}
		case <-p.clk.After(presenceReload):
			load(ids)
		}
	}
}

// heldElsewhere re-reads agent id's hold just before it is rung: another daemon may have held
// the agent back a moment ago, its notification still on the way. Without a store, or when
// Redis cannot say, it is not held (the reservation still keeps two daemons apart).
func (p *Pool) heldElsewhere(ctx context.Context, id string) bool {
	store, _ := p.holdStore()
	if store == nil {
		return false
	}
	got, err := store.Get(ctx, []string{id})
	if err != nil {
		return false
	}
	p.applyHolds(got)
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.byID[id]
	return a != nil && (now.Before(a.wrapUntil) || now.Before(a.coolUntil))
}
