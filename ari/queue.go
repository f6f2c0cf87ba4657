package ari

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrApplicationReplaced ends a session whose app another client took over, once the session
// has waited its turn (see Conn.replaced).
var ErrApplicationReplaced = errors.New("ari: another client took over an application")

// ErrBacklogFull ends a session whose events pile up faster than they are handled: past
// Options.MaxBacklogEvents or MaxBacklogBytes the socket is closed, what was still queued is
// dropped, and the resync after the reconnect tells the handlers where things stand.
var ErrBacklogFull = errors.New("ari: event backlog over its bound; closing the socket to resync")

// item is one entry of an app's event stream: a raw frame, or the snapshot that must reach
// the Handler before the frames of the socket it was taken for.
type item struct {
	frame   []byte
	snap    *Snapshot
	session uint64 // the connection session whose socket read the frame
}

// queue never makes the reader wait. Asterisk closes a socket whose writes stall for 100 ms
// (websocket_write_timeout), so waiting would lose events anyway, at a moment nobody chose.
// Its bound (checked by gate.push) is therefore not back-pressure but a decision: a handler so
// far behind that the backlog passes it is better served by a resync than by more memory.
type queue struct {
	mu     sync.Mutex
	items  []item
	signal chan struct{} // holds a token while items may be non-empty
	// pending counts items pushed and not yet handled (taken by popAll but still being worked
	// through included): the backlog an operator wants to see.
	pending atomic.Int64
	// pendingBytes is the size of the pending frames.
	pendingBytes atomic.Int64
}

func newQueue() *queue { return &queue{signal: make(chan struct{}, 1)} }

func (q *queue) push(its ...item) {
	q.mu.Lock()
	q.items = append(q.items, its...)
	q.mu.Unlock()
	q.pending.Add(int64(len(its)))
	q.pendingBytes.Add(framesSize(its))
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// done marks one popped item as handled.
func (q *queue) done(it item) {
	q.pending.Add(-1)
	q.pendingBytes.Add(-int64(len(it.frame)))
}

// discard drops what is queued and not yet taken: after a backlog overflow the resync that
// follows supersedes it.
func (q *queue) discard() {
	q.mu.Lock()
	its := q.items
	q.items = nil
	q.mu.Unlock()
	q.pending.Add(-int64(len(its)))
	q.pendingBytes.Add(-framesSize(its))
}

func framesSize(its []item) int64 {
	var n int64
	for _, it := range its {
		n += int64(len(it.frame))
	}
	return n
}

// backlogBound is the most a queue may hold (the frames a gate still holds included).
type backlogBound struct{ events, bytes int64 }

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
	mu        sync.Mutex
	session   uint64
	q         *queue
	bound     backlogBound
	open      bool
	held      []item
	heldBytes int64
}

// push queues frame, or refuses it with ErrBacklogFull when the backlog would pass its bound.
func (g *gate) push(frame []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	events := g.q.pending.Load() + int64(len(g.held)) + 1
	if !g.open {
		// The snapshot goes in ahead of what is held (openWith): its place is kept, or the
		// backlog would pass the bound by one when the gate opens.
		events++
	}
	bytes := g.q.pendingBytes.Load() + g.heldBytes + int64(len(frame))
	if events > g.bound.events || bytes > g.bound.bytes {
		return ErrBacklogFull
	}
	if g.open {
		g.q.push(item{frame: frame, session: g.session})
		return nil
	}
	g.held = append(g.held, item{frame: frame, session: g.session})
	g.heldBytes += int64(len(frame))
	return nil
}

func (g *gate) openWith(snap Snapshot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.q.push(append([]item{{snap: &snap}}, g.held...)...)
	g.held, g.heldBytes = nil, 0
	g.open = true
}
