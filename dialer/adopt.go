package dialer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// The janitor adopts what a dead callback left on the PBX (issue 11). Asterisk keeps a Stasis
// application's channels and bridges when its socket goes away, and ARI bridges never hang up
// the other party, so after a kill -9 nobody would end the agent's leg when the customer hangs
// up: the agent's phone would sit in Stasis in silence and count busy for ever. Every id
// callbackd gives a channel or bridge names its promise and claim (ari.ParseCallbackID), so
// whoever sees one nobody watches can ask Redis whether its callback still has an owner.
//
// It settles nothing: a claim whose owner died is finished by Reclaim at its lease expiry
// (kept or late by the recorded connect time), so a promise is counted once, by one path. The
// one write it makes is that connect time, when the callback died before writing it.

// JanitorREST is what the janitor asks of one Asterisk (ari.Client).
type JanitorREST interface {
	Channels(ctx context.Context) ([]ari.Channel, error)
	Bridges(ctx context.Context) ([]ari.Bridge, error)
	Hangup(ctx context.Context, id, reason string) error
	DestroyBridge(ctx context.Context, id string) error
}

// watchedChannels says whether a live callback of this daemon routes a channel's events
// (Control).
type watchedChannels interface {
	Watches(id string) bool
}

// JanitorOptions are the janitor's dependencies.
type JanitorOptions struct {
	Promises JanitorPromises
	// Queues are the configured callback queues: a callback id carries no queue, so the
	// promise is looked for in each.
	Queues []string
	// Instance is this daemon's instance name: a lease whose worker it prefixes and that no
	// live callback of ours watches was left by an earlier process with the same name.
	Instance string
	// Control tells the channels of this daemon's live callbacks, which are never adopted.
	Control watchedChannels
	// PBX returns the REST API of the Asterisk with that entity id.
	PBX    func(asteriskID string) (JanitorREST, bool)
	Clock  clock.Clock
	Logger *zap.Logger
	// Lease is how long the janitor holds a promise whose conversation it adopted after
	// Reclaim had handed it back; its expiry finishes the promise kept or late.
	Lease time.Duration
	// Recheck is how soon a callback whose owner could not be decided (Redis unreachable) is
	// looked at again; 5 s when zero.
	Recheck time.Duration
	// ControlApps are this daemon's control applications. Their channels' events reach the
	// janitor through the control app itself; on the monitor app's stream (Monitor) it heeds
	// the channels in any other application's Stasis: another daemon's callback legs.
	ControlApps []string
	// ConfirmDigit is the digit a queue's customers must press for a call to count as
	// reaching them (queues[].confirm_digit; "" for none), for a conversation the janitor
	// only heard of.
	ConfirmDigit func(queue string) string
}

// Janitor is an ari.Handler of the control application: its Resync and its events for
// callbackd channels nobody watches queue looks that Run carries out.
type Janitor struct {
	opts JanitorOptions
	log  *zap.Logger

	mu      sync.Mutex
	work    []chore
	ready   chan struct{}
	looking map[string]bool          // asterisk id → a look is queued
	adopted map[string]*conversation // bridge id → a conversation watched to its end
	byLeg   map[string]*conversation // leg id → its adopted conversation
	later   map[string]time.Time     // bridge id → left alone (owner alive) until then
	// talked are the callbacks of other (maybe dead) daemons whose customer answered, heard
	// through the monitor's copy of their events: a customer who answers and hangs up while
	// the callback's daemon is dead leaves nothing on the PBX for a look to find, only this.
	talked map[string]*talk // bridge id → what was heard
}

// talk is what the janitor heard of a customer leg nobody here watches.
type talk struct {
	asterisk string
	id       ari.CallbackID // the attempt (Leg empty)
	at       time.Time      // when the customer answered
	digits   string         // what the customer pressed
	// queued and stored: the answer's write to Redis (storeHeard) is waiting, or done (or
	// needs doing no more). looked: storeHeard read the promise and found the customer had
	// not pressed the confirm digit by then (digits as they were): only a new key press is
	// worth another read.
	queued, stored, looked bool
	lookedDigits           string
}

// conversation is an adopted callback whose two legs talk in its bridge.
type conversation struct {
	asterisk, bridge, agent, customer string
}

// chore is one piece of the janitor's work: a look at one Asterisk (with the resync's
// snapshot, or nil to read it), or the end of an adopted conversation's leg.
type chore struct {
	asterisk string
	snap     *ari.Snapshot
	ended    string // a leg of an adopted conversation that ended
	heard    string // the bridge of an attempt whose heard answer is to be stored
}

// looks: a chore that is a look at an Asterisk (those are queued once per Asterisk).
func (c chore) looks() bool { return c.ended == "" && c.snap == nil && c.heard == "" }

// NewJanitor checks the options.
func NewJanitor(o JanitorOptions) (*Janitor, error) {
	if o.Promises == nil || o.Control == nil || o.PBX == nil || o.Clock == nil || len(o.Queues) == 0 {
		return nil, errors.New("dialer: the janitor needs promises, queues, control, PBX and a clock")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Recheck <= 0 {
		o.Recheck = 5 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	return &Janitor{opts: o, log: o.Logger, ready: make(chan struct{}, 1), looking: map[string]bool{},
		adopted: map[string]*conversation{}, byLeg: map[string]*conversation{}, later: map[string]time.Time{},
		talked: map[string]*talk{}}, nil
}

// Adopted is how many conversations the janitor watches, for tests and metrics.
func (j *Janitor) Adopted() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.adopted)
}

// Resync implements ari.Handler: after every (re)connect the snapshot is searched for
// callbackd channels and bridges nobody watches.
func (j *Janitor) Resync(snap ari.Snapshot) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if snap.Restarted {
		// Asterisk restarted: every adopted conversation went with it.
		for id, c := range j.adopted {
			if c.asterisk == snap.AsteriskID {
				j.dropLocked(id)
			}
		}
	}
	j.putLocked(chore{asterisk: snap.AsteriskID, snap: &snap})
}

// HandleEvent implements ari.Handler. It must never wait: the connection's consumer calls it.
func (j *Janitor) HandleEvent(ev *ari.Event) {
	ids := channelsOf(ev)
	if ev.Bridge != nil && ev.Bridge.ID != "" {
		ids = append(ids, ev.Bridge.ID)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, id := range ids {
		if c := j.byLeg[id]; c != nil {
			if legEnded(ev, id) {
				j.putLocked(chore{asterisk: c.asterisk, ended: id})
			}
			continue
		}
		p, ok := ari.ParseCallbackID(id)
		if ok && p.Leg == ari.LegCustomer && !j.watched(p) {
			j.heardLocked(ev, p)
		}
		if !ok || endsOnly(ev.Type) || j.watched(p) {
			continue
		}
		if until, ok := j.later[p.Bridge]; ok && j.opts.Clock.Now().Before(until) {
			continue
		}
		j.putLocked(chore{asterisk: ev.AsteriskID})
	}
}

// heardLocked notes that the customer of attempt p answered, and what they pressed.
func (j *Janitor) heardLocked(ev *ari.Event, p ari.CallbackID) {
	p.Leg = ""
	tk := j.talked[p.Bridge]
	if tk == nil {
		if ev.Channel == nil || ev.Channel.State != "Up" {
			return
		}
		tk = &talk{asterisk: ev.AsteriskID, id: p, at: j.opts.Clock.Now()}
		j.talked[p.Bridge] = tk
	}
	if ev.Type == ari.EventChannelDtmfReceived {
		tk.digits += ev.Digit
	}
	if !tk.stored && !tk.queued && !(tk.looked && tk.lookedDigits == tk.digits) {
		tk.queued = true
		j.putLocked(chore{asterisk: tk.asterisk, heard: p.Bridge})
	}
}

// storeHeard writes a heard answer into its promise (queue.Store.MarkHeard) while the claim is
// still dialing, once it counts as reaching the customer (the queue's confirm digit pressed,
// where it has one): the daemon that heard it may die with the claim's own, and the lease
// expiry must still know the customer talked. A claim connected, finished or taken back
// meanwhile needs nothing stored; what happens to it then is recordHeard's, from memory.
func (j *Janitor) storeHeard(ctx context.Context, bridge string) {
	j.mu.Lock()
	tk := j.talked[bridge]
	if tk == nil || tk.stored {
		j.mu.Unlock()
		return
	}
	tk.queued = false
	heard := *tk
	j.mu.Unlock()
	job, found, err := j.find(ctx, heard.id.Promise)
	switch {
	case err != nil:
		return // Redis unreachable: the next event about the leg tries again
	case !found:
	case j.confirmPending(job.Queue, heard.digits):
		// Not yet a person: only the next key press queues this again.
		j.noteTalk(bridge, func(tk *talk) { tk.looked, tk.lookedDigits = true, heard.digits })
		return
	default:
		// The script is the judge of whether the claim still dials (fenced by its token).
		_, err = j.opts.Promises.MarkHeard(ctx, job.Ref(), heard.id.Token, heard.at)
		if err != nil && !errors.Is(err, queue.ErrStaleToken) && !errors.Is(err, queue.ErrWrongState) && !errors.Is(err, queue.ErrNotFound) {
			j.log.Warn("storing a heard answer failed; the memory of it still counts", zap.String("promise", job.ID), zap.Error(err))
			return
		}
	}
	j.noteTalk(bridge, func(tk *talk) { tk.stored = true })
}

// confirmPending: the queue asks for a confirm digit the customer has not pressed in digits.
func (j *Janitor) confirmPending(queueName, digits string) bool {
	if j.opts.ConfirmDigit == nil {
		return false
	}
	confirm := j.opts.ConfirmDigit(queueName)
	return confirm != "" && !strings.Contains(digits, confirm)
}

// noteTalk changes what is known of the talk heard in bridge, if it is still remembered.
func (j *Janitor) noteTalk(bridge string, change func(tk *talk)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if tk := j.talked[bridge]; tk != nil {
		change(tk)
	}
}

// Monitor is the janitor's ari.Handler for the monitor application, which sees every
// channel. Another daemon's callback legs sit in that daemon's own control application, whose
// events never reach this one's: the monitor's copy is how the janitor learns of them, looks
// at whose they are (a live daemon's are left alone and looked at again when its lease would
// run out), and hears the end of those it adopted.
func (j *Janitor) Monitor() ari.Handler { return janitorMonitor{j} }

type janitorMonitor struct{ j *Janitor }

// Resync implements ari.Handler: the control application's resync looks at the same
// snapshot.
func (janitorMonitor) Resync(ari.Snapshot) {}

// HandleEvent implements ari.Handler. Channels in this daemon's control application, and
// those in no Stasis application at all (a leg still ringing, not a callback's yet), are left
// to the control app's stream, so no event is looked at twice.
func (m janitorMonitor) HandleEvent(ev *ari.Event) {
	if ev.Channel == nil {
		return
	}
	j := m.j
	j.mu.Lock()
	adopted := j.byLeg[ev.Channel.ID] != nil
	j.mu.Unlock()
	if !adopted {
		app := ari.StasisApp(ev.Channel)
		if app == "" && ari.IsCallbackLeg(ev.Channel.ID) {
			// A leg not in Stasis yet: a customer leg answering enters its daemon's control
			// app only after its state changed, and that daemon may be dead. Only heard.
			if p, ok := ari.ParseCallbackID(ev.Channel.ID); ok && p.Leg == ari.LegCustomer {
				j.mu.Lock()
				if !j.watched(p) {
					j.heardLocked(ev, p)
				}
				j.mu.Unlock()
			}
			return
		}
		if app == "" || slices.Contains(j.opts.ControlApps, app) || !ari.IsCallbackLeg(ev.Channel.ID) {
			return
		}
	}
	// The channel alone, with the digit it heard (a confirm digit decides what was heard).
	j.HandleEvent(&ari.Event{Type: ev.Type, AsteriskID: ev.AsteriskID, Application: ev.Application, Channel: ev.Channel, Digit: ev.Digit})
}

// legEnded: a leg counts as gone on ChannelDestroyed, as in a callback's own note.
func legEnded(ev *ari.Event, id string) bool {
	return (ev.Type == ari.EventChannelDestroyed || ev.Type == EventGone) && ev.Channel != nil && ev.Channel.ID == id
}

// endsOnly: events that say something ended. One about a channel nobody watches needs no
// look of its own (what it leaves behind is seen at the next look), and the last events of
// this daemon's own callbacks arrive after they stopped watching.
func endsOnly(t ari.EventType) bool {
	switch t {
	case ari.EventChannelHangupRequest, ari.EventChannelDestroyed, ari.EventStasisEnd,
		ari.EventChannelLeftBridge, ari.EventBridgeDestroyed:
		return true
	}
	return false
}

func (j *Janitor) putLocked(c chore) {
	if c.looks() {
		if j.looking[c.asterisk] {
			return
		}
		j.looking[c.asterisk] = true
	}
	j.work = append(j.work, c)
	select {
	case j.ready <- struct{}{}:
	default:
	}
}

func (j *Janitor) dropLocked(bridge string) {
	if c := j.adopted[bridge]; c != nil {
		delete(j.byLeg, c.agent)
		delete(j.byLeg, c.customer)
		delete(j.adopted, bridge)
	}
}

// Run carries out the looks and clean-ups until ctx ends.
func (j *Janitor) Run(ctx context.Context) error {
	for {
		j.mu.Lock()
		var c chore
		have := len(j.work) > 0
		if have {
			c, j.work = j.work[0], j.work[1:]
			if c.looks() {
				delete(j.looking, c.asterisk)
			}
		}
		j.mu.Unlock()
		if !have {
			select {
			case <-ctx.Done():
				return nil
			case <-j.ready:
			}
			continue
		}
		switch {
		case c.ended != "":
			j.endConversation(ctx, c.asterisk, c.ended)
		case c.heard != "":
			j.storeHeard(ctx, c.heard)
		default:
			j.look(ctx, c)
		}
	}
}

// attempt is what one Asterisk holds of one callback attempt.
type attempt struct {
	id       ari.CallbackID
	agent    *ari.Channel
	customer *ari.Channel
	bridge   *ari.Bridge
}

// look finds the callbackd channels and bridges nobody watches on one Asterisk and decides
// what becomes of each attempt.
func (j *Janitor) look(ctx context.Context, c chore) {
	rest, ok := j.opts.PBX(c.asterisk)
	if !ok {
		return
	}
	var channels []ari.Channel
	var bridges []ari.Bridge
	if c.snap != nil {
		channels, bridges = c.snap.Channels, c.snap.Bridges
	} else {
		var err error
		if channels, err = rest.Channels(ctx); err == nil {
			bridges, err = rest.Bridges(ctx)
		}
		if err != nil {
			if ctx.Err() == nil {
				j.log.Warn("listing channels for callbacks nobody watches failed", zap.Error(err))
			}
			return
		}
	}
	for _, a := range j.attempts(channels, bridges) {
		j.decide(ctx, c.asterisk, rest, a)
	}
	j.recordHeard(ctx, c.asterisk)
	j.endVanished(ctx, c.asterisk, rest, channels)
}

// attempts groups the callbackd channels and bridges by attempt, leaving out those of this
// daemon's live callbacks and the conversations already adopted.
func (j *Janitor) attempts(channels []ari.Channel, bridges []ari.Bridge) []*attempt {
	by := map[string]*attempt{}
	var order []*attempt
	get := func(id ari.CallbackID) *attempt {
		a := by[id.Bridge]
		if a == nil {
			a = &attempt{id: id}
			a.id.Leg = ""
			by[id.Bridge] = a
			order = append(order, a)
		}
		return a
	}
	for i := range channels {
		ch := &channels[i]
		if id, ok := ari.ParseCallbackID(ch.ID); ok && id.Leg != "" {
			a := get(id)
			if id.Leg == ari.LegAgent {
				a.agent = ch
			} else {
				a.customer = ch
			}
		}
	}
	for i := range bridges {
		b := &bridges[i]
		if id, ok := ari.ParseCallbackID(b.ID); ok && id.Leg == "" {
			get(id).bridge = b
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	out := order[:0]
	for _, a := range order {
		if j.adopted[a.id.Bridge] != nil || j.watched(a.id) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// watched: a live callback of this daemon drives the attempt (Control routes its legs'
// events; a bridge is watched through its legs).
func (j *Janitor) watched(id ari.CallbackID) bool {
	agent, customer, _ := ari.CallbackIDs(id.Promise, id.Token)
	return j.opts.Control.Watches(agent) || j.opts.Control.Watches(customer)
}

func (a *attempt) legIDs() (agent, customer, bridge string) {
	return ari.CallbackIDs(a.id.Promise, a.id.Token)
}

// talking: both legs answered and in the attempt's bridge — a conversation, never cut to tidy
// up.
func (a *attempt) talking() bool {
	if a.agent == nil || a.customer == nil || a.bridge == nil || a.agent.State != "Up" || a.customer.State != "Up" {
		return false
	}
	in := map[string]bool{}
	for _, id := range a.bridge.Channels {
		in[id] = true
	}
	return in[a.agent.ID] && in[a.customer.ID]
}

// decide adopts an attempt whose owner is gone and leaves alone one a live daemon holds.
func (j *Janitor) decide(ctx context.Context, asterisk string, rest JanitorREST, a *attempt) {
	log := j.log.With(zap.String("bridge", a.id.Bridge))
	owner, until, job, found, err := j.liveClaim(ctx, a.id)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reading the promise of a callback nobody watches failed; looking again later", zap.Error(err))
			j.lookAgainAt(ctx, asterisk, a.id.Bridge, j.opts.Clock.Now().Add(j.opts.Recheck))
		}
		return
	}
	if owner != "" {
		// Another daemon's callback: it ends its own calls. If it died, its lease runs out and
		// the next look adopts what it left.
		log.Debug("leaving a callback of a live claim alone", zap.String("worker", owner))
		j.lookAgainAt(ctx, asterisk, a.id.Bridge, until.Add(time.Second))
		return
	}
	if a.talking() {
		if found {
			if err := j.recordTalk(ctx, job, a.id); err != nil {
				// The conversation is adopted all the same; the next look tries the write again.
				log.Warn("recording an adopted conversation's connect failed", zap.Error(err))
				j.lookAgainAt(ctx, asterisk, a.id.Bridge, j.opts.Clock.Now().Add(j.opts.Recheck))
				return
			}
		}
		agent, customer, bridge := a.legIDs()
		c := &conversation{asterisk: asterisk, bridge: bridge, agent: agent, customer: customer}
		j.mu.Lock()
		j.adopted[bridge], j.byLeg[agent], j.byLeg[customer] = c, c, c
		j.mu.Unlock()
		log.Info("adopted a conversation whose callback's daemon is gone; it goes on until one side hangs up")
		// A leg may have ended between the listing and now, its ChannelDestroyed not routed
		// here yet: look once more now that the legs are.
		j.endVanished(ctx, asterisk, rest, nil)
		return
	}
	// A leg still ringing, whispering or waiting for a customer who never came, of a claim
	// that is gone: nobody will ever drive it on.
	agent, customer, bridge := a.legIDs()
	if a.agent != nil {
		j.hangup(rest, agent, log)
	}
	if a.customer != nil {
		j.hangup(rest, customer, log)
	}
	if a.bridge != nil {
		j.destroyBridge(rest, bridge, log)
	}
	log.Info("cleaned up a callback whose daemon is gone",
		zap.Bool("agent_leg", a.agent != nil), zap.Bool("customer_leg", a.customer != nil), zap.Bool("had_bridge", a.bridge != nil))
}

// talkMemory bounds how long a heard answer is kept for a claim whose owner stays alive.
const talkMemory = time.Hour

// recordHeard writes the connect of the conversations heard on asterisk whose callback's
// daemon is gone, whether or not their legs are still there: a customer who answered (and
// pressed the queue's confirm digit, where it has one) talked to an agent, and must not be
// rung again as if they never had. A claim a live daemon holds is looked at again when its
// lease would run out.
func (j *Janitor) recordHeard(ctx context.Context, asterisk string) {
	j.mu.Lock()
	var heard []talk
	for b, tk := range j.talked {
		if tk.asterisk != asterisk {
			continue
		}
		if j.opts.Clock.Now().Sub(tk.at) > talkMemory {
			delete(j.talked, b)
			continue
		}
		heard = append(heard, *tk)
	}
	j.mu.Unlock()
	for _, tk := range heard {
		owner, until, job, found, err := j.liveClaim(ctx, tk.id)
		switch {
		case err != nil:
			continue // Redis unreachable: the next look tries again
		case owner != "":
			j.lookAgainAt(ctx, asterisk, tk.id.Bridge, until.Add(time.Second))
			continue
		}
		done := !found
		if found {
			switch {
			case j.confirmPending(job.Queue, tk.digits):
				done = true // answered but never confirmed: a mailbox, not a person
			case job.State != queue.StateDialing && job.State != queue.StatePending:
				done = true // connected (its own write) or finished
			default:
				_, err := j.opts.Promises.MarkAdopted(ctx, job.Ref(), tk.id.Token, tk.at, j.opts.Instance+"/janitor", j.opts.Lease)
				switch {
				case err == nil:
					j.log.Info("recorded the conversation of a callback whose daemon was gone, heard through the monitor",
						zap.String("promise", job.ID))
					done = true
				case errors.Is(err, queue.ErrStaleToken) || errors.Is(err, queue.ErrWrongState) || errors.Is(err, queue.ErrNotFound):
					done = true
				default:
					j.log.Warn("recording a heard conversation failed; looking again later", zap.Error(err))
				}
			}
		}
		if done {
			j.mu.Lock()
			delete(j.talked, tk.id.Bridge)
			j.mu.Unlock()
		}
	}
}

// lookAgainAt queues a look at the Asterisk once at is reached, unless one is already due
// for the attempt by then.
func (j *Janitor) lookAgainAt(ctx context.Context, asterisk, bridge string, at time.Time) {
	j.mu.Lock()
	if prev, ok := j.later[bridge]; ok && !prev.Before(at) {
		j.mu.Unlock()
		return
	}
	j.later[bridge] = at
	j.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-j.opts.Clock.After(at.Sub(j.opts.Clock.Now())):
		}
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.later[bridge].Equal(at) {
			delete(j.later, bridge)
		}
		j.putLocked(chore{asterisk: asterisk})
	}()
}

// endVanished ends the adopted conversations on the Asterisk one of whose legs is no longer
// listed (channels nil: read the list).
func (j *Janitor) endVanished(ctx context.Context, asterisk string, rest JanitorREST, channels []ari.Channel) {
	j.mu.Lock()
	var mine []*conversation
	for _, c := range j.adopted {
		if c.asterisk == asterisk {
			mine = append(mine, c)
		}
	}
	j.mu.Unlock()
	if len(mine) == 0 {
		return
	}
	if channels == nil {
		var err error
		if channels, err = rest.Channels(ctx); err != nil {
			return
		}
	}
	alive := map[string]bool{}
	for _, ch := range channels {
		alive[ch.ID] = true
	}
	for _, c := range mine {
		switch {
		case !alive[c.agent]:
			j.endConversation(ctx, asterisk, c.agent)
		case !alive[c.customer]:
			j.endConversation(ctx, asterisk, c.customer)
		}
	}
}

// endConversation: one side of an adopted conversation hung up; ARI bridges do not hang up
// the other, so the janitor does, and destroys the bridge.
func (j *Janitor) endConversation(_ context.Context, asterisk, ended string) {
	j.mu.Lock()
	c := j.byLeg[ended]
	if c != nil {
		j.dropLocked(c.bridge)
	}
	j.mu.Unlock()
	rest, ok := j.opts.PBX(asterisk)
	if c == nil || !ok {
		return
	}
	log := j.log.With(zap.String("bridge", c.bridge))
	other := c.agent
	if ended == c.agent {
		other = c.customer
	}
	j.hangup(rest, other, log)
	j.destroyBridge(rest, c.bridge, log)
	log.Info("an adopted conversation ended; hung up the other side and destroyed the bridge")
}

// hangup and destroyBridge work after shutdown began; a 404 means it is gone already.
func (j *Janitor) hangup(rest JanitorREST, id string, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rest.Hangup(ctx, id, "normal"); err != nil && ari.StatusOf(err) != 404 {
		log.Warn("hanging up a leg of a callback nobody watches failed", zap.String("channel", id), zap.Error(err))
	}
}

func (j *Janitor) destroyBridge(rest JanitorREST, id string, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rest.DestroyBridge(ctx, id); err != nil && ari.StatusOf(err) != 404 {
		log.Warn("destroying a callback bridge nobody watches failed", zap.Error(err))
	}
}
