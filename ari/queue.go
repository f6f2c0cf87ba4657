package ari

import (
	"context"
	"sync"
	"sync/atomic"
)

// item is one entry of an app's event stream: a raw frame, or the snapshot that must reach
// the Handler before the frames of the socket it was taken for.
type item struct {
	frame []byte
	snap  *Snapshot
}

// queue is unbounded on purpose. Asterisk closes a socket whose writes stall for 100 ms
// (websocket_write_timeout), and a closed socket loses events for good, while memory spent on
// a backlog is returned once the Handler catches up. So the reader must never wait for the
// Handler, and the only safe bound is none.
type queue struct {
	mu     sync.Mutex
	items  []item
	signal chan struct{} // holds a token while items may be non-empty
	// pending counts items pushed and not yet handled (taken by popAll but still being worked
	// through included): the backlog an operator wants to see.
	pending atomic.Int64
}

func newQueue() *queue { return &queue{signal: make(chan struct{}, 1)} }

func (q *queue) push(its ...item) {
	q.mu.Lock()
	q.items = append(q.items, its...)
	q.mu.Unlock()
	q.pending.Add(int64(len(its)))
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// done marks one popped item as handled.
func (q *queue) done() { q.pending.Add(-1) }

// popAll takes everything queued, waiting for at least one item; it fails only when ctx ends.
func (q *queue) popAll(ctx context.Context) ([]item, error) {
	for {
		q.mu.Lock()
		its := q.items
		q.items = nil
		q.mu.Unlock()
		if len(its) > 0 {
			return its, nil
		}
		select {
		case <-q.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// gate holds the frames a new socket delivers until that socket's snapshot is taken, then
// lets the snapshot through first and the frames after it, so a Handler never sees an event
// from a connection before learning what it missed during the gap.
type gate struct {
	mu   sync.Mutex
	q    *queue
	open bool
	held []item
}

func (g *gate) push(frame []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		g.q.push(item{frame: frame})
		return
	}
	g.held = append(g.held, item{frame: frame})
}

func (g *gate) openWith(snap Snapshot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.q.push(append([]item{{snap: &snap}}, g.held...)...)
	g.held = nil
	g.open = true
}
