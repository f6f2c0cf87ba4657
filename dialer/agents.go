package dialer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// Agent states, the values of callbackd_agents{state}. Every agent is in exactly one.
const (
	AgentOffline   = "offline"    // endpoint offline or not seen on any connected Asterisk
	AgentBusy      = "busy"       // device in use or ringing, not by callbackd
	AgentCalling   = "calling"    // making a callback for this daemon
	AgentWrapUp    = "wrap_up"    // just finished a callback
	AgentCooldown  = "cooldown"   // did not answer, or could not be rung
	AgentPaused    = "paused"     // taken out of the pool by a supervisor
	AgentLoggedOut = "logged_out" // said they are not working now
	AgentOffShift  = "off_shift"  // outside their shifts: never rung, whatever their phone says
	AgentFree      = "free"       // may be rung now
	deviceNotInUse = "NOT_INUSE"
)

// AgentStates lists every agent state, for metrics that start at zero.
func AgentStates() []string {
	return []string{AgentOffline, AgentBusy, AgentCalling, AgentWrapUp, AgentCooldown, AgentPaused, AgentLoggedOut,
		AgentOffShift, AgentFree}
}

// Directory is what the pool needs from one Asterisk to learn where agents are.
type Directory interface {
	Endpoints(ctx context.Context) ([]ari.Endpoint, error)
	DeviceState(ctx context.Context, name string) (ari.DeviceState, error)
	Subscribe(ctx context.Context, app string, sources ...string) error
}

// Pool knows, from the monitor application's events, which agents may be rung. It is an
// ari.Handler for the monitor app (several Asterisks may share it) and is safe for
// concurrent use.
type Pool struct {
	clk     clock.Clock
	log     *zap.Logger
	changed chan struct{}

	mu         sync.Mutex
	agents     []*agent
	byID       map[string]*agent
	byEndpoint map[string]*agent
	refresh    chan string // asterisk ids whose endpoints must be re-read
	presences  PresenceStore
	holds      HoldStore
}

type agent struct {
	cfg      Agent
	asterisk string // entity id of the Asterisk its endpoint was found on
	endpoint string // online, offline, unknown; "" until known
	device   string // Asterisk device state; "" until known
	// presence is what the agent said (shared through Redis); "" is logged in.
	presence queue.PresenceState
	// presenceSets counts the presences set through this daemon: a read of the store that
	// began before one must not overwrite it with what it read.
	presenceSets uint64
	// endpointHeard and deviceHeard count what changed the endpoint and device states other
	// than a REST read: an event, or the disconnect that forgets them. A read that began
	// before such a change knows less than it and must not overwrite it.
	endpointHeard, deviceHeard uint64
	calling                    bool
	// wrapUntil and coolUntil hold the agent back after a call or a failed ring; with a
	// HoldStore they are shared by every daemon (holds.go).
	wrapUntil, coolUntil time.Time
	freeSince            time.Time
	callStart            time.Time // when its callback for this daemon began
}

// AgentView is a read-only copy of an agent's state.
type AgentView struct {
	ID            string    `json:"id"`
	Name          string    `json:"name,omitempty"`
	Endpoint      string    `json:"endpoint"`
	Extension     string    `json:"extension,omitempty"`
	Queues        []string  `json:"queues,omitempty"`
	Asterisk      string    `json:"asterisk,omitempty"`
	State         string    `json:"state"`
	EndpointState string    `json:"endpoint_state,omitempty"`
	DeviceState   string    `json:"device_state,omitempty"`
	Presence      string    `json:"presence"`
	OnShift       bool      `json:"on_shift"`
	Until         time.Time `json:"until,omitzero"` // end of wrap-up or cooldown
	FreeSince     time.Time `json:"free_since,omitzero"`
}

// Serves reports whether the agent takes callbacks for queue.
func (v AgentView) Serves(queueName string) bool { return serves(v.Queues, queueName) }

// NewPool returns a pool of the configured agents, all offline until an Asterisk reports
// their endpoints.
func NewPool(agents []Agent, clk clock.Clock, log *zap.Logger) *Pool {
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	p := &Pool{clk: clk, log: log, changed: make(chan struct{}, 1), byID: map[string]*agent{},
		byEndpoint: map[string]*agent{}, refresh: make(chan string, 16)}
	for _, a := range agents {
		ag := &agent{cfg: a}
		p.agents = append(p.agents, ag)
		p.byID[a.ID] = ag
		p.byEndpoint[a.Endpoint] = ag
	}
	return p
}

func (a *agent) state(now time.Time) string {
	switch {
	case a.calling:
		return AgentCalling
	case a.presence == queue.PresenceLoggedOut:
		return AgentLoggedOut
	case a.presence == queue.PresencePaused:
		return AgentPaused
	case !a.onShift(now):
		return AgentOffShift
	case a.asterisk == "", a.device == "UNAVAILABLE", a.device == "INVALID":
		return AgentOffline
	// The device state is the stronger signal: a PJSIP endpoint can read offline until its
	// first qualify while its registered phone is NOT_INUSE (notes §6). Only without a usable
	// device state does the endpoint state decide.
	case (a.device == "" || a.device == "UNKNOWN") && (a.endpoint == "" || a.endpoint == "offline"):
		return AgentOffline
	case a.device != deviceNotInUse && a.device != "":
		return AgentBusy
	case now.Before(a.wrapUntil):
		return AgentWrapUp
	case now.Before(a.coolUntil):
		return AgentCooldown
	}
	return AgentFree
}

// onShift reports whether t is in the agent's shifts; an agent without shifts always is.
func (a *agent) onShift(t time.Time) bool { return a.cfg.Shift == nil || a.cfg.Shift.Open(t) }

func (a *agent) presenceOrDefault() queue.PresenceState {
	if a.presence == "" {
		return queue.PresenceLoggedIn
	}
	return a.presence
}

func (a *agent) view(now time.Time) AgentView {
	v := AgentView{ID: a.cfg.ID, Name: a.cfg.Name, Endpoint: a.cfg.Endpoint, Extension: a.cfg.Extension,
		Queues: a.cfg.Queues, Asterisk: a.asterisk, State: a.state(now), EndpointState: a.endpoint,
		DeviceState: a.device, FreeSince: a.freeSince, Presence: string(a.presenceOrDefault()), OnShift: a.onShift(now)}
	switch v.State {
	case AgentWrapUp:
		v.Until = a.wrapUntil
	case AgentCooldown:
		v.Until = a.coolUntil
	}
	return v
}

// Changed says, without blocking the pool, that an agent may have become free: the
// dispatcher waits on it. Several changes before it is read make one signal.
func (p *Pool) Changed() <-chan struct{} { return p.changed }

func (p *Pool) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// update changes an agent under the lock and reports whether it became free.
func (p *Pool) update(a *agent, change func()) (becameFree bool) {
	now := p.clk.Now()
	before := a.state(now)
	change()
	after := a.state(now)
	if after == AgentFree && before != AgentFree {
		a.freeSince = now
		return true
	}
	return false
}

// HandleEvent implements ari.Handler for the monitor application.
func (p *Pool) HandleEvent(ev *ari.Event) {
	var freed bool
	p.mu.Lock()
	switch {
	case ev.Type == ari.EventEndpointStateChange && ev.Endpoint != nil:
		if a := p.byEndpoint[ev.Endpoint.Technology+"/"+ev.Endpoint.Resource]; a != nil {
			freed = p.update(a, func() {
				a.endpoint = ev.Endpoint.State
				a.endpointHeard++
				if a.asterisk == "" {
					a.asterisk = ev.AsteriskID
				}
			})
		}
	case ev.Type == ari.EventDeviceStateChanged && ev.DeviceState != nil:
		if a := p.byEndpoint[ev.DeviceState.Name]; a != nil && (a.asterisk == "" || a.asterisk == ev.AsteriskID) {
			freed = p.update(a, func() {
				a.device = ev.DeviceState.State
				a.deviceHeard++
				if a.asterisk == "" {
					a.asterisk = ev.AsteriskID
				}
				// A device that registers again is online even before EndpointStateChange.
				if a.device == deviceNotInUse && a.endpoint == "" {
					a.endpoint = "unknown"
				}
			})
		}
	}
	p.mu.Unlock()
	if freed {
		p.notify()
	}
}

// Resync implements ari.Handler: after every (re)connect the endpoints are read again and the
// endpoint subscriptions, which Asterisk forgets with the socket, are renewed (by Run).
func (p *Pool) Resync(snap ari.Snapshot) {
	select {
	case p.refresh <- snap.AsteriskID:
	default:
		p.log.Warn("agent refresh queue full; endpoints are re-read on the next reconnect",
			zap.String("asterisk_id", snap.AsteriskID))
	}
}

// Disconnected marks the agents on an Asterisk whose events stopped as offline: their state
// is unknown until the resync after the reconnect reads it again, and ringing them blind
// would only put them in cooldown.
func (p *Pool) Disconnected(asteriskID string) {
	if asteriskID == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.agents {
		if a.asterisk == asteriskID {
			p.update(a, func() {
				a.endpoint, a.device = "", ""
				a.endpointHeard++
				a.deviceHeard++
			})
		}
	}
}

// PBXs finds a connected Asterisk by its entity id.
type PBXs interface {
	PBX(asteriskID string) (PBX, bool)
}

// PBX is one connected Asterisk as the dialer uses it.
type PBX struct {
	ID         string
	Name       string
	REST       REST
	MonitorApp string
	ControlApp string
}

// Run re-reads endpoints and device states of every Asterisk that reconnected, until ctx ends.
func (p *Pool) Run(ctx context.Context, pbxs PBXs) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-p.refresh:
			pbx, ok := pbxs.PBX(id)
			if !ok {
				p.log.Warn("agent refresh: asterisk not connected", zap.String("asterisk_id", id))
				continue
			}
			if err := p.Refresh(ctx, id, pbx.MonitorApp, pbx.REST); err != nil && ctx.Err() == nil {
				p.log.Error("reading agent endpoints failed; agents on this Asterisk stay as they were",
					zap.String("asterisk", pbx.Name), zap.Error(err))
			}
		}
	}
}

// Refresh reads the agents' endpoints and device states from one Asterisk and subscribes the
// monitor application to their endpoint state changes.
//
// An event handled while the reads were under way is newer than what they found, so it is kept.
func (p *Pool) Refresh(ctx context.Context, asteriskID, monitorApp string, dir Directory) error {
	type heard struct{ endpoint, device uint64 }
	p.mu.Lock()
	before := make(map[*agent]heard, len(p.agents))
	for _, a := range p.agents {
		before[a] = heard{a.endpointHeard, a.deviceHeard}
	}
	p.mu.Unlock()
	eps, err := dir.Endpoints(ctx)
	if err != nil {
		return fmt.Errorf("listing endpoints of %s: %w", asteriskID, err)
	}
	type found struct {
		a      *agent
		state  string
		device string
	}
	var list []found
	var sources []string
	p.mu.Lock()
	for _, ep := range eps {
		if a := p.byEndpoint[ep.Technology+"/"+ep.Resource]; a != nil && (a.asterisk == "" || a.asterisk == asteriskID) {
			list = append(list, found{a: a, state: ep.State})
			sources = append(sources, "endpoint:"+a.cfg.Endpoint)
		}
	}
	p.mu.Unlock()
	var errs []error
	for i := range list {
		ds, err := dir.DeviceState(ctx, list[i].a.cfg.Endpoint)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading device state of %s: %w", list[i].a.cfg.Endpoint, err))
			continue
		}
		list[i].device = ds.State
	}
	if len(sources) > 0 {
		if err := dir.Subscribe(ctx, monitorApp, sources...); err != nil {
			errs = append(errs, fmt.Errorf("subscribing %s to agent endpoints: %w", monitorApp, err))
		}
	}
	freed := false
	p.mu.Lock()
	for _, f := range list {
		if f.device == "" {
			continue // unreadable device: the agent stays as it was, as the error says
		}
		was := before[f.a]
		freed = p.update(f.a, func() {
			f.a.asterisk = asteriskID
			if f.a.endpointHeard == was.endpoint {
				f.a.endpoint = f.state
			}
			if f.a.deviceHeard == was.device {
				f.a.device = f.device
			}
		}) || freed
	}
	p.mu.Unlock()
	if freed {
		p.notify()
	}
	p.log.Info("agents refreshed", zap.String("asterisk_id", asteriskID), zap.Int("found", len(list)))
	return errors.Join(errs...)
}

// Free lists the agents that may be rung now, longest idle first.
func (p *Pool) Free() []AgentView {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []AgentView
	for _, a := range p.agents {
		if a.state(now) == AgentFree {
			out = append(out, a.view(now))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].FreeSince.Before(out[j].FreeSince) })
	return out
}

// Agents returns every agent's state, in config order.
func (p *Pool) Agents() []AgentView {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]AgentView, 0, len(p.agents))
	for _, a := range p.agents {
		out = append(out, a.view(now))
	}
	return out
}

// Count returns how many agents are in each state.
func (p *Pool) Count() map[string]int {
	out := map[string]int{}
	for _, v := range p.Agents() {
		out[v.State]++
	}
	return out
}

// NextChange is when the earliest wrap-up or cooldown ends or a shift starts or ends; false
// when none of these is ahead.
func (p *Pool) NextChange() (time.Time, bool) {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var next time.Time
	for _, a := range p.agents {
		shift := time.Time{}
		if a.cfg.Shift != nil {
			if a.cfg.Shift.Open(now) {
				shift = a.cfg.Shift.NextClosing(now)
			} else {
				shift = a.cfg.Shift.NextOpening(now)
			}
		}
		for _, t := range []time.Time{a.wrapUntil, a.coolUntil, shift} {
			if t.After(now) && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	return next, !next.IsZero()
}

// Available lists the extensions of agents who are on duty (not offline, paused or cooling
// down after a call they did not answer), so their promises are held for them during the
// owner-preference window. A busy agent still holds: they will be free soon.
func (p *Pool) Available() []string {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, a := range p.agents {
		if st := a.state(now); onDuty(st) && st != AgentCooldown && a.cfg.Extension != "" {
			out = append(out, a.cfg.Extension)
		}
	}
	return out
}

// onDuty: the agent works now and will take callbacks when free (perhaps after this call).
func onDuty(state string) bool {
	switch state {
	case AgentOffline, AgentPaused, AgentLoggedOut, AgentOffShift:
		return false
	}
	return true
}

// OnDuty is how many agents serving queueName are on duty: on shift, logged in, not paused,
// not offline.
func (p *Pool) OnDuty(queueName string) int {
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, a := range p.agents {
		if st := a.state(now); onDuty(st) && a.cfg.Serves(queueName) {
			n++
		}
	}
	return n
}

// ErrUnknownAgent is returned for an agent id that is not configured.
var ErrUnknownAgent = errors.New("unknown agent")

func (p *Pool) with(id string, change func(a *agent)) error {
	p.mu.Lock()
	a := p.byID[id]
	if a == nil {
		p.mu.Unlock()
		return fmt.Errorf("%w %q", ErrUnknownAgent, id)
	}
	freed := p.update(a, func() { change(a) })
	p.mu.Unlock()
	if freed {
		p.notify()
	}
	return nil
}

// SetPaused takes an agent out of the pool or puts it back (presence paused or logged in).
func (p *Pool) SetPaused(id string, paused bool) error {
	state := queue.PresenceLoggedIn
	if paused {
		state = queue.PresencePaused
	}
	return p.SetPresence(context.Background(), id, state, "api")
}

// startCall marks an agent as making a callback for this daemon.
func (p *Pool) startCall(id string) {
	now := p.clk.Now()
	_ = p.with(id, func(a *agent) { a.calling, a.callStart = true, now })
}

// endCall ends the agent's callback; wrap-up or cooldown, when > 0, hold it back that long.
// (The dispatcher shares the hold with the other daemons first: shareHold.)
func (p *Pool) endCall(id string, wrapUp, cooldown time.Duration) {
	hold := p.holdFor(wrapUp, cooldown)
	_ = p.with(id, func(a *agent) {
		a.calling = false
		if wrapUp > 0 {
			a.wrapUntil = hold.WrapUpUntil
		}
		if cooldown > 0 {
			a.coolUntil = hold.CooldownUntil
		}
	})
}

// deviceRead begins a REST read of an agent's device state; commit records what the read found
// unless an event about the device was handled since (the event is newer).
func (p *Pool) deviceRead(id string) (commit func(state string)) {
	var was uint64
	p.mu.Lock()
	if a := p.byID[id]; a != nil {
		was = a.deviceHeard
	}
	p.mu.Unlock()
	return func(state string) {
		_ = p.with(id, func(a *agent) {
			if a.deviceHeard == was {
				a.device = state
			}
		})
	}
}
