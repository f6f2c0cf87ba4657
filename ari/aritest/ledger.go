package aritest

import "time"

// ChannelRecord is what the fake saw of one channel, kept after it is gone: tests that count
// what a daemon did to the PBX (legs dialled, overlaps, channels left behind) read it.
type ChannelRecord struct {
	ID, Name string
	// Endpoint is the endpoint the channel was created for ("PJSIP/1001").
	Endpoint string
	// App is the Stasis application the channel was originated into, "" for dialplan calls.
	App string
	// Created, Answered (zero if never Up) and Destroyed (zero while it exists); a channel
	// that vanished in a Restart is destroyed then.
	Created, Answered, Destroyed time.Time
}

// BridgeRecord is what the fake saw of one bridge.
type BridgeRecord struct {
	ID, Name, Class, Creator string
	Created, Destroyed       time.Time
}

// ledger is the fake's record of every channel and bridge it ever had, in creation order.
type ledger struct {
	channels []ChannelRecord
	chanAt   map[string]int
	bridges  []BridgeRecord
	bridgeAt map[string]int
}

func (l *ledger) channelCreated(ch *channel, at time.Time) {
	if l.chanAt == nil {
		l.chanAt = map[string]int{}
	}
	l.chanAt[ch.snap.ID] = len(l.channels)
	l.channels = append(l.channels, ChannelRecord{ID: ch.snap.ID, Name: ch.snap.Name, Endpoint: ch.endpoint, Created: at})
}

func (l *ledger) channel(id string) *ChannelRecord {
	if i, ok := l.chanAt[id]; ok {
		return &l.channels[i]
	}
	return nil
}

func (l *ledger) channelInApp(id, app string) {
	if r := l.channel(id); r != nil && r.App == "" {
		r.App = app
	}
}

func (l *ledger) channelAnswered(id string, at time.Time) {
	if r := l.channel(id); r != nil && r.Answered.IsZero() {
		r.Answered = at
	}
}

func (l *ledger) channelDestroyed(id string, at time.Time) {
	if r := l.channel(id); r != nil && r.Destroyed.IsZero() {
		r.Destroyed = at
	}
}

func (l *ledger) bridgeCreated(b *bridge, at time.Time) {
	if l.bridgeAt == nil {
		l.bridgeAt = map[string]int{}
	}
	l.bridgeAt[b.snap.ID] = len(l.bridges)
	l.bridges = append(l.bridges, BridgeRecord{ID: b.snap.ID, Name: b.snap.Name, Class: b.snap.BridgeClass, Creator: b.snap.Creator, Created: at})
}

func (l *ledger) bridgeDestroyed(id string, at time.Time) {
	if i, ok := l.bridgeAt[id]; ok && l.bridges[i].Destroyed.IsZero() {
		l.bridges[i].Destroyed = at
	}
}

// ChannelHistory returns every channel the fake has had since it started, in creation order.
func (s *Server) ChannelHistory() []ChannelRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ChannelRecord(nil), s.ledger.channels...)
}

// BridgeHistory returns every bridge the fake has had since it started, in creation order.
func (s *Server) BridgeHistory() []BridgeRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]BridgeRecord(nil), s.ledger.bridges...)
}
