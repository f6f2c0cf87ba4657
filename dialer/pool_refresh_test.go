package dialer

import (
	"context"
	"testing"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
)

// duringRead is a Directory whose device-state read answers what it read before the change
// that happens while the answer travels back: the REST answer and the event about the change
// race, and the event may be handled first.
type duringRead struct {
	endpoint  string
	read      string
	meanwhile func()
}

func (d *duringRead) Endpoints(context.Context) ([]ari.Endpoint, error) {
	return []ari.Endpoint{{Technology: "PJSIP", Resource: "1002", State: d.endpoint}}, nil
}

func (d *duringRead) DeviceState(_ context.Context, name string) (ari.DeviceState, error) {
	if d.meanwhile != nil {
		d.meanwhile()
	}
	return ari.DeviceState{Name: name, State: d.read}, nil
}

func (d *duringRead) Subscribe(context.Context, string, ...string) error { return nil }

// A device state read over REST is older than a DeviceStateChanged the pool handled while the
// read was under way: the event wins, or an agent whose call ended during a resync stays busy
// until its phone next changes (a chaos run found one such agent at rest). Without an event
// in between, what the read found is recorded.
func TestADeviceEventDuringAReadWinsOverWhatTheReadSaw(t *testing.T) {
	dev := func(p *Pool, s string) {
		p.HandleEvent(&ari.Event{Type: ari.EventDeviceStateChanged, AsteriskID: "ast1",
			DeviceState: &ari.DeviceState{Name: "PJSIP/1002", State: s}})
	}
	for _, tc := range []struct {
		name      string
		before    string // the device state the pool had from events
		read      string // what the read answered
		meanwhile string // an event handled during the read ("" none)
		want      string
	}{
		{"a call ended during the resync's read", "INUSE", "INUSE", "NOT_INUSE", AgentFree},
		{"a call began during the resync's read", deviceNotInUse, deviceNotInUse, "RINGING", AgentBusy},
		{"the read alone finds the phone idle", "INUSE", deviceNotInUse, "", AgentFree},
		{"the read alone finds the phone in use", deviceNotInUse, "INUSE", "", AgentBusy},
	} {
		t.Run("resync: "+tc.name, func(t *testing.T) {
			p := NewPool([]Agent{{ID: "bob", Endpoint: "PJSIP/1002", Extension: "1002"}}, clock.NewFake(monday10), nil)
			dev(p, tc.before)
			dir := &duringRead{endpoint: "online", read: tc.read}
			if tc.meanwhile != "" {
				dir.meanwhile = func() { dev(p, tc.meanwhile) }
			}
			if err := p.Refresh(t.Context(), "ast1", "monitor", dir); err != nil {
				t.Fatal(err)
			}
			if got := p.Agents()[0].State; got != tc.want {
				t.Errorf("after the refresh the agent is %s, want %s", got, tc.want)
			}
		})
		t.Run("re-check before ringing: "+tc.name, func(t *testing.T) {
			p := NewPool([]Agent{{ID: "bob", Endpoint: "PJSIP/1002", Extension: "1002"}}, clock.NewFake(monday10), nil)
			dev(p, tc.before)
			commit := p.deviceRead("bob")
			if tc.meanwhile != "" {
				dev(p, tc.meanwhile)
			}
			commit(tc.read)
			if got := p.Agents()[0].State; got != tc.want {
				t.Errorf("after the re-check the agent is %s, want %s", got, tc.want)
			}
		})
	}
}
