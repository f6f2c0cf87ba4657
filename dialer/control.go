package dialer

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/callbackd/callbackd/ari"
)

// Events Control makes up after a resync, for what happened while the socket was down.
const (
	// EventGone: the resync no longer lists the channel, so its ChannelDestroyed was lost.
	EventGone ari.EventType = "callbackd.ChannelGone"
	// EventSnapshot: the channel is still there; its snapshot carries the state it reached
	// (an answer whose ChannelStateChange was lost shows as state Up).
	EventSnapshot ari.EventType = "callbackd.ChannelSnapshot"
)

// Control routes the control application's events to the callback that owns each channel.
// Channel ids are chosen by the dialer, so a callback watches an id before asking Asterisk
// for it and sees every event, even one that beats the REST reply.
//
// It is an ari.Handler shared by every Asterisk connection, hence the lock.
type Control struct {
	mu    sync.Mutex
	owner map[string]watch // channel id → who wants its events
}

type watch struct {
	asterisk string // asterisk id (entity id) the channel lives on
	in       *inbox
	// exists: Asterisk has the channel (its create request returned, or an event named it).
	// Until then a resync that does not list it says nothing: the request may still be on
	// its way, or not even sent.
	exists bool
}

// NewControl returns an empty router.
func NewControl() *Control { return &Control{owner: map[string]watch{}} }

// Watch sends every event about channel id on asterisk to in, until Forget.
func (c *Control) Watch(asterisk, id string, in *inbox) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owner[id] = watch{asterisk: asterisk, in: in}
}

// Created records that Asterisk accepted the channel (its originate or create returned), so a
// resync that no longer lists it means it ended.
func (c *Control) Created(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.owner[id]; ok {
		w.exists = true
		c.owner[id] = w
	}
}

// Forget stops routing events for the channel ids.
func (c *Control) Forget(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(c.owner, id)
	}
}

// Watches reports whether a live callback routes the channel's events: the janitor never
// adopts what a live callback drives.
func (c *Control) Watches(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.owner[id]
	return ok
}

// Watching is how many channels are routed, for tests and shutdown checks.
func (c *Control) Watching() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.owner)
}

// HandleEvent implements ari.Handler.
func (c *Control) HandleEvent(ev *ari.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[*inbox]bool{}
	for _, id := range channelsOf(ev) {
		w, ok := c.owner[id]
		if !ok {
			continue
		}
		if !w.exists {
			w.exists = true
			c.owner[id] = w
		}
		if !seen[w.in] {
			seen[w.in] = true
			w.in.put(ev)
		}
	}
}

// Resync implements ari.Handler: a watched channel the snapshot no longer lists ended while
// nobody listened, and its owner must hear that or it would wait for ever; one still listed
// may have been answered meanwhile, so its owner gets its current snapshot. A channel not yet
// known to exist (requested, its reply not back; or not requested yet) is not gone: reporting
// it so would record a customer who is about to answer as failed.
func (c *Control) Resync(snap ari.Snapshot) {
	alive := make(map[string]*ari.Channel, len(snap.Channels))
	for i := range snap.Channels {
		alive[snap.Channels[i].ID] = &snap.Channels[i]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, w := range c.owner {
		if w.asterisk != snap.AsteriskID {
			continue
		}
		if ch := alive[id]; ch != nil && !snap.Restarted {
			c := *ch
			w.in.put(&ari.Event{Type: EventSnapshot, AsteriskID: snap.AsteriskID, Channel: &c})
			continue
		}
		if !w.exists && !snap.Restarted {
			continue
		}
		w.in.put(&ari.Event{Type: EventGone, AsteriskID: snap.AsteriskID, Channel: &ari.Channel{ID: id}})
	}
}

// channelsOf lists the channel ids an event is about.
func channelsOf(ev *ari.Event) []string {
	var ids []string
	for _, ch := range []*ari.Channel{ev.Channel, ev.Peer, ev.Caller} {
		if ch != nil && ch.ID != "" {
			ids = append(ids, ch.ID)
		}
	}
	if ev.Playback != nil {
		if id, ok := strings.CutPrefix(ev.Playback.TargetURI, "channel:"); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// inbox is an unbounded, ordered queue of events for one callback. The connection's consumer
// must never wait for a callback, so put never blocks.
type inbox struct {
	mu    sync.Mutex
	q     []*ari.Event
	ready chan struct{}
}

func newInbox() *inbox { return &inbox{ready: make(chan struct{}, 1)} }

func (b *inbox) put(ev *ari.Event) {
	b.mu.Lock()
	b.q = append(b.q, ev)
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// take returns the oldest event, or nil when there is none.
func (b *inbox) take() *ari.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.q) == 0 {
		return nil
	}
	ev := b.q[0]
	b.q[0] = nil
	b.q = b.q[1:]
	return ev
}

// next waits for the next event until ctx ends or timeout fires (nil timeout: none).
func (b *inbox) next(ctx context.Context, timeout <-chan time.Time) (*ari.Event, error) {
	for {
		if ev := b.take(); ev != nil {
			return ev, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout:
			return nil, errTimeout
		case <-b.ready:
		}
	}
}
