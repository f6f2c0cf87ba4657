package ari

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Manager runs one Conn per Asterisk. Events keep the asterisk_id of the server that sent
// them, so Handlers shared by all connections tell the servers apart (and must lock; see
// Handler).
type Manager struct {
	conns []*Conn
}

// NewManager checks that there is at least one Conn and that names are unique.
func NewManager(conns ...*Conn) (*Manager, error) {
	if len(conns) == 0 {
		return nil, errors.New("ari: manager: no Asterisk connection configured")
	}
	seen := map[string]bool{}
	for i, c := range conns {
		if c == nil {
			return nil, fmt.Errorf("ari: manager: connection %d is nil", i)
		}
		if seen[c.Name()] {
			return nil, fmt.Errorf("ari: manager: two connections are named %q; names must be unique", c.Name())
		}
		seen[c.Name()] = true
	}
	return &Manager{conns: append([]*Conn(nil), conns...)}, nil
}

// Conns returns the connections in configuration order.
func (m *Manager) Conns() []*Conn { return append([]*Conn(nil), m.conns...) }

// Run runs every connection until ctx ends. One Asterisk being down never stops the others.
func (m *Manager) Run(ctx context.Context, monitor, control Handler) error {
	var wg sync.WaitGroup
	errs := make([]error, len(m.conns))
	for i, c := range m.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Run(ctx, monitor, control)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Connected maps each connection's name to whether it is up and resynced.
func (m *Manager) Connected() map[string]bool {
	out := make(map[string]bool, len(m.conns))
	for _, c := range m.conns {
		out[c.Name()] = c.Connected()
	}
	return out
}

// Client returns the REST client for an Asterisk, found by its asterisk_id (entity id, known
// once it has connected) or by its configured name.
func (m *Manager) Client(id string) (*Client, bool) {
	for _, c := range m.conns {
		if aid := c.AsteriskID(); aid != "" && aid == id {
			return c.Client(), true
		}
	}
	for _, c := range m.conns {
		if c.Name() == id {
			return c.Client(), true
		}
	}
	return nil, false
}
