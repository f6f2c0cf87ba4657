package ari

import "time"

// Handler consumes the events of one ARI application in the order Asterisk sent them.
// Both methods are called from one goroutine per connection, never concurrently, so a
// Handler that serves one connection needs no locking of its own; a Handler shared by several
// connections (several Asterisk servers) must lock.
type Handler interface {
	// HandleEvent receives every decoded event of a known type; event types this version does
	// not know are counted (callbackd_ari_events_total) and skipped before they get here.
	HandleEvent(ev *Event)
	// Resync is called after every (re)connect, once the REST snapshot has been taken and
	// before any event received on the new socket is handed on. Whatever the Handler tracks
	// for snap.AsteriskID that is not in the snapshot ended while we were not listening.
	Resync(snap Snapshot)
}

// Handlers hands every event and every resync to each of its handlers in turn, so several
// consumers (the detector, the agent pool) can share one application's events.
type Handlers []Handler

// HandleEvent implements Handler.
func (hs Handlers) HandleEvent(ev *Event) {
	for _, h := range hs {
		h.HandleEvent(ev)
	}
}

// Resync implements Handler.
func (hs Handlers) Resync(snap Snapshot) {
	for _, h := range hs {
		h.Resync(snap)
	}
}

// Snapshot is what an Asterisk reported over REST right after a (re)connect.
type Snapshot struct {
	// AsteriskID is /asterisk/info system.entity_id, the same as every event's asterisk_id.
	AsteriskID string
	// StartupTime is /asterisk/info status.startup_time.
	StartupTime time.Time
	// Restarted is true when StartupTime differs from the previous connection's: every
	// channel and bridge from before is gone, whatever the lists below say.
	Restarted bool
	// At is when the snapshot was taken, on the connection's clock.
	At       time.Time
	Channels []Channel
	Bridges  []Bridge
}
