// Package aritest is an in-process fake Asterisk for tests, in the spirit of net/http/httptest:
// a real HTTP server on 127.0.0.1:0 that speaks the ARI wire protocol (REST and the
// /ari/events WebSocket) with the JSON shapes of the recordings in ari/testdata/traces.
//
// What it models, from the recordings of Asterisk 22 (see traces/README.md):
//   - one copy of every event per subscribed app; a subscribeAll app sees every channel,
//     bridge and device state; other apps see only channels they originated or created,
//     bridges they put channels into and explicit subscriptions; StasisStart/StasisEnd go to
//     the owning app only; an app never gets ChannelCreated for channels it creates;
//   - events for an app whose socket is not connected are dropped, not queued;
//   - phones registering and going away (SetEndpoint to or from Unavailable): EndpointStateChange
//     online/offline only to apps subscribed to endpoint:TECH/RES, DeviceStateChanged
//     (NOT_INUSE/UNAVAILABLE) to subscribeAll apps and deviceState: subscribers; an endpoint:
//     subscription also brings every channel event of that endpoint's channels;
//   - DTMF keyed by the far end: ChannelDtmfReceived (digit, duration_ms 100) to the apps that
//     get the channel's events, from a scripted phone after it answers an ARI-dialled leg
//     (Behavior.Digits) or at once from SendDTMF (these two items follow the Asterisk
//     source, as in the shared ARI notes §1 and §6; no recording holds them);
//   - playbacks: GET /playbacks/{id} answers 200 with the Playback from the play request
//     until PlaybackFinished, 404 "Playback not found" after it or once the channel is gone
//     (res/res_stasis_playback.c unlinks a playback when its play command is done with), so
//     a PlaybackFinished lost in a socket gap can be read back;
//   - ARI-dialled legs that fail get no final Dial event, only ChannelHangupRequest and
//     ChannelDestroyed with the recorded causes (busy 17/486, our timeout 19/480);
//   - dialplan calls scripted with Inbound: Dial, blind transfer, VoiceMail, Playback, with the
//     recorded hang-up causes (README "Things a fake must get right" §1–§7).
//
// Deliberate differences from a real Asterisk (the fidelity tests normalise them away):
//   - no RTP-quality ChannelVarset noise (RTPAUDIOQOS*), no ChannelUnhold, no
//     PeerStatusChange/ContactStatusChange;
//   - EndpointStateChange only when online/offline changes; Asterisk also sends one, with the
//     same state, whenever a channel joins or leaves the endpoint (channel_ids changed);
//   - a Local/... endpoint is one channel (the ;1 half); its ;2 half is not modelled;
//   - events of one moment are emitted in one fixed order, where Asterisk varies it.
//
// Time: every timestamp and every scripted delay uses Options.Clock, so tests can drive a
// clock.Fake (see Server.Drive) and never depend on wall-clock speed.
package aritest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Username and Password guard REST and /ari/events; defaults "callbackd"/"callbackd-secret".
	Username, Password string
	// AsteriskID is system.entity_id and every event's asterisk_id; default "02:fc:00:00:00:01".
	AsteriskID string
	// Clock stamps events and times scripted delays; default clock.Real{}.
	Clock clock.Clock
	// Logf, when set, receives one line per REST request and socket change.
	Logf func(format string, args ...any)
}

// Server is a fake Asterisk. All methods are safe for concurrent use.
type Server struct {
	opts Options
	clk  clock.Clock
	ln   net.Listener
	hs   *http.Server
	url  string

	mu        sync.Mutex
	startup   time.Time
	epoch     int // bumped by Restart; scripts of an older epoch stop
	idSeq     int
	nameSeq   int
	channels  map[string]*channel
	bridges   map[string]*bridge
	apps      map[string]*app
	endpoints map[string]Behavior
	devices   map[string]string    // Stasis: device states set over REST
	lastDev   map[string]string    // device state last announced per phone, so only changes go out
	vmCount   map[string]int       // messages left per mailbox, for VM_MESSAGEFILE names
	playbacks map[string]*playback // the playbacks Asterisk still holds, by id
	ledger    ledger               // every channel and bridge ever seen (ledger.go)
	closed    bool

	done chan struct{}
	wg   sync.WaitGroup
}

type channel struct {
	snap        ari.Channel
	vars        map[string]string
	endpoint    string // "PJSIP/1001"
	created     int    // creation order, for "oldest linkedid"
	stasisApp   string
	args        []string
	bridge      string
	subs        map[string]bool // apps subscribed to this channel
	bridged     bool            // has been in a bridge: changes the caller's hang-up causes
	answered    chan struct{}   // closed when the channel goes Up
	gone        chan struct{}   // closed when destroyed
	dialing     bool
	stickyCause *failedDial
}

// failedDial is the cause a failed dialplan Dial leaves on the caller (README §1, trace 05).
type failedDial struct{ cause, tech int }

type bridge struct {
	snap     ari.Bridge
	members  []string
	subs     map[string]bool
	dialplan bool // a basic bridge made by Dial(): goes away when it empties
}

type app struct {
	name         string
	conn         *wsConn
	subscribeAll bool
	allowed      map[string]bool // nil: everything
	disallowed   map[string]bool
	endpoints    map[string]bool
	deviceNames  map[string]bool
	sent         int // events handed to a socket, for tests that wait for delivery
}

// New starts a fake Asterisk listening on 127.0.0.1 on a free port.
func New(opts Options) (*Server, error) {
	if opts.Username == "" {
		opts.Username = "callbackd"
	}
	if opts.Password == "" {
		opts.Password = "callbackd-secret"
	}
	if opts.AsteriskID == "" {
		opts.AsteriskID = "02:fc:00:00:00:01"
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("aritest: listening on loopback: %w", err)
	}
	s := &Server{
		opts:      opts,
		clk:       opts.Clock,
		ln:        ln,
		url:       "http://" + ln.Addr().String(),
		startup:   opts.Clock.Now(),
		idSeq:     100,
		channels:  map[string]*channel{},
		bridges:   map[string]*bridge{},
		apps:      map[string]*app{},
		endpoints: map[string]Behavior{},
		devices:   map[string]string{},
		lastDev:   map[string]string{},
		vmCount:   map[string]int{},
		playbacks: map[string]*playback{},
		done:      make(chan struct{}),
	}
	s.hs = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.hs.Serve(ln) }()
	return s, nil
}

// URL is "http://127.0.0.1:PORT"; ARI lives under URL()+"/ari".
func (s *Server) URL() string { return s.url }

// Close drops every socket, stops every script and shuts the server down.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.dropSocketsLocked()
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.hs.Shutdown(ctx)
	s.wg.Wait()
}

// DropWebSockets closes every /ari/events socket abruptly, like a network drop. The apps
// become inactive: events produced while no socket is connected are dropped, as Asterisk does.
// Channels stay in Stasis and bridges stay up.
func (s *Server) DropWebSockets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropSocketsLocked()
}

// DropApps closes abruptly the sockets holding any of the named apps, and only those: one
// client of several vanishing (a daemon killed beside another), as DropWebSockets does for
// every client. The apps those sockets held become inactive as there.
func (s *Server) DropApps(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dropped := map[*wsConn]bool{}
	for _, n := range names {
		if a := s.apps[n]; a != nil && a.conn != nil {
			dropped[a.conn] = true
		}
	}
	for _, a := range s.apps {
		if a.conn != nil && dropped[a.conn] {
			a.conn.abort()
			a.conn = nil
			a.subscribeAll = false
		}
	}
}

func (s *Server) dropSocketsLocked() {
	for _, a := range s.apps {
		if a.conn != nil {
			a.conn.abort()
			a.conn = nil
		}
		a.subscribeAll = false
	}
}

// Restart behaves like an Asterisk restart: sockets drop, every channel and bridge vanishes
// without a single event, running scripts stop, and status.startup_time changes.
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropSocketsLocked()
	s.epoch++
	for _, ch := range s.channels {
		close(ch.gone)
		s.ledger.channelDestroyed(ch.snap.ID, s.clk.Now())
	}
	for id := range s.bridges {
		s.ledger.bridgeDestroyed(id, s.clk.Now())
	}
	s.channels = map[string]*channel{}
	s.bridges = map[string]*bridge{}
	s.apps = map[string]*app{}
	s.playbacks = map[string]*playback{}
	now := s.clk.Now()
	if !now.After(s.startup) {
		// Asterisk's startup_time has millisecond resolution: make sure it visibly changes
		// even on a clock that did not move.
		now = s.startup.Add(time.Second)
	}
	s.startup = now
}

// StartupTime is what GET /ari/asterisk/info reports as status.startup_time.
func (s *Server) StartupTime() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startup
}

// Connected reports whether an events socket for app is connected.
func (s *Server) Connected(appName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[appName]
	return a != nil && a.conn != nil
}

// Delivered is how many events the fake has handed to the sockets of app so far.
func (s *Server) Delivered(appName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.apps[appName]; a != nil {
		return a.sent
	}
	return 0
}

// DeviceState returns the state GET /deviceStates/{name} would answer now.
func (s *Server) DeviceState(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deviceStateOfLocked(name)
}

// Channels returns snapshots of the current channels, oldest first.
func (s *Server) Channels() []ari.Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channelListLocked()
}

func (s *Server) channelListLocked() []ari.Channel {
	chs := make([]*channel, 0, len(s.channels))
	for _, ch := range s.channels {
		chs = append(chs, ch)
	}
	sort.Slice(chs, func(i, j int) bool { return chs[i].created < chs[j].created })
	out := make([]ari.Channel, 0, len(chs))
	for _, ch := range chs {
		out = append(out, ch.snapshot())
	}
	return out
}

// Bridges returns snapshots of the current bridges.
func (s *Server) Bridges() []ari.Bridge {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bridgeListLocked()
}

func (s *Server) bridgeListLocked() []ari.Bridge {
	ids := make([]string, 0, len(s.bridges))
	for id := range s.bridges {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]ari.Bridge, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.bridges[id].snapshot())
	}
	return out
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

func (ch *channel) snapshot() ari.Channel {
	c := ch.snap
	c.ChannelVars = map[string]string{ari.LinkedIDVar: ch.snap.ChannelVars[ari.LinkedIDVar]}
	return c
}

func (b *bridge) snapshot() ari.Bridge {
	c := b.snap
	c.Channels = append([]string{}, b.members...)
	return c
}

// ---- event fan-out ----

type fields map[string]any

func (s *Server) stamp() string { return s.clk.Now().UTC().Format(ari.TimeLayout) }

// emitLocked sends one copy of an event to every app in targets that has a socket and whose
// filter lets the type through; the rest are dropped, as Asterisk drops them.
func (s *Server) emitLocked(typ ari.EventType, f fields, targets []string) {
	ts := s.stamp()
	for _, name := range targets {
		a := s.apps[name]
		if a == nil || a.conn == nil || !a.allows(typ) {
			continue
		}
		ev := make(map[string]any, len(f)+4)
		for k, v := range f {
			ev[k] = v
		}
		ev["type"] = typ
		ev["timestamp"] = ts
		ev["asterisk_id"] = s.opts.AsteriskID
		ev["application"] = name
		data, err := json.Marshal(ev)
		if err != nil {
			s.logf("aritest: encoding %s: %v", typ, err)
			continue
		}
		a.sent++
		if !a.conn.send(data) {
			// Asterisk closes a socket that does not keep up; so do we.
			a.conn.abort()
			a.conn = nil
			a.subscribeAll = false
		}
	}
}

func (a *app) allows(typ ari.EventType) bool {
	if a.allowed != nil && !a.allowed[string(typ)] {
		return false
	}
	return !a.disallowed[string(typ)]
}

func (s *Server) monitorsLocked() []string {
	var out []string
	for name, a := range s.apps {
		if a.subscribeAll {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func union(lists ...[]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lists {
		for _, v := range l {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) chanTargetsLocked(ch *channel) []string {
	var ep []string
	for name, a := range s.apps {
		if a.endpoints[ch.endpoint] {
			ep = append(ep, name)
		}
	}
	sort.Strings(ep)
	return union(s.monitorsLocked(), keys(ch.subs), ep)
}

func (s *Server) bridgeTargetsLocked(b *bridge) []string {
	return union(s.monitorsLocked(), keys(b.subs))
}

func (s *Server) chanEventLocked(typ ari.EventType, ch *channel, f fields) {
	if f == nil {
		f = fields{}
	}
	f["channel"] = ch.snapshot()
	s.emitLocked(typ, f, s.chanTargetsLocked(ch))
	if typ == ari.EventChannelCreated {
		s.phoneChangedLocked(ch.endpoint)
	}
}

func (s *Server) varsetLocked(ch *channel, name, value string) {
	ch.vars[name] = value
	s.chanEventLocked(ari.EventChannelVarset, ch, fields{"variable": name, "value": value})
}

func (s *Server) setStateLocked(ch *channel, state string) {
	if ch.snap.State == state {
		return
	}
	ch.snap.State = state
	if state == "Up" {
		s.ledger.channelAnswered(ch.snap.ID, s.clk.Now())
	}
	s.chanEventLocked(ari.EventChannelStateChange, ch, nil)
	if state == "Up" && ch.answered != nil {
		select {
		case <-ch.answered:
		default:
			close(ch.answered)
		}
	}
	s.phoneChangedLocked(ch.endpoint)
}

func (s *Server) dialplanLocked(ch *channel, appName, data string) {
	ch.snap.Dialplan.AppName = appName
	ch.snap.Dialplan.AppData = data
	ch.snap.Dialplan.Priority++
	s.chanEventLocked(ari.EventChannelDialplan, ch, fields{"dialplan_app": appName, "dialplan_app_data": data})
}

// phoneChangedLocked announces a phone's device state when its channels changed it, and, as
// Asterisk does for every endpoint snapshot update, an EndpointStateChange with its channels
// to the apps subscribed to the endpoint.
func (s *Server) phoneChangedLocked(endpoint string) {
	b, known := s.endpoints[endpoint]
	if !known {
		return
	}
	s.emitLocked(ari.EventEndpointStateChange, fields{"endpoint": s.endpointJSONLocked(endpoint, b)}, s.endpointSubsLocked(endpoint))
	if st := s.deviceStateOfLocked(endpoint); s.lastDev[endpoint] != st {
		s.deviceStateLocked(endpoint, st)
	}
}

func (s *Server) endpointSubsLocked(endpoint string) []string {
	var subs []string
	for name, a := range s.apps {
		if a.endpoints[endpoint] {
			subs = append(subs, name)
		}
	}
	sort.Strings(subs)
	return subs
}

func (s *Server) deviceStateLocked(name, state string) {
	s.lastDev[name] = state
	if name == "" {
		return
	}
	var subs []string
	for n, a := range s.apps {
		if a.deviceNames[name] {
			subs = append(subs, n)
		}
	}
	sort.Strings(subs)
	s.emitLocked(ari.EventDeviceStateChanged, fields{"device_state": ari.DeviceState{Name: name, State: state}},
		union(s.monitorsLocked(), subs))
}

// ---- channels ----

// ChannelSpec describes a channel to create with CreateChannel.
type ChannelSpec struct {
	// Endpoint is "PJSIP/trunk", "PJSIP/1001", "Local/noanswer@test"...
	Endpoint string
	// ID overrides the generated "unix.seq" id (ARI channelId).
	ID string
	// CallerName and CallerNumber are the channel's caller id.
	CallerName, CallerNumber string
	// Context and Exten are where the channel starts in the dialplan; defaults from-sip / s.
	Context, Exten string
	// State defaults to "Ring" (an inbound call); use "Down" for outbound legs.
	State string
	// LinkedID defaults to the channel's own id.
	LinkedID string
	// Vars are set on the channel, each with a ChannelVarset event.
	Vars map[string]string
}

// CreateChannel creates a channel and emits ChannelCreated (and a ChannelVarset per Vars entry)
// to the subscribeAll apps, as a real Asterisk does for an inbound SIP call.
func (s *Server) CreateChannel(spec ChannelSpec) ari.Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.newChannelLocked(spec)
	s.chanEventLocked(ari.EventChannelCreated, ch, nil)
	names := make([]string, 0, len(spec.Vars))
	for k := range spec.Vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		s.varsetLocked(ch, k, spec.Vars[k])
	}
	return ch.snapshot()
}

func (s *Server) newChannelLocked(spec ChannelSpec) *channel {
	s.idSeq++
	s.nameSeq++
	id := spec.ID
	if id == "" {
		id = fmt.Sprintf("%d.%d", s.clk.Now().Unix(), s.idSeq)
	}
	name := fmt.Sprintf("%s-%08x", spec.Endpoint, s.nameSeq)
	if strings.HasPrefix(spec.Endpoint, "Local/") {
		name += ";1"
	}
	ctx, exten, state := spec.Context, spec.Exten, spec.State
	if ctx == "" {
		ctx = "from-sip"
	}
	if exten == "" {
		exten = "s"
	}
	if state == "" {
		state = "Ring"
	}
	linked := spec.LinkedID
	if linked == "" {
		linked = id
	}
	now := s.stamp()
	ch := &channel{
		snap: ari.Channel{
			ID:           id,
			Name:         name,
			State:        state,
			ProtocolID:   fmt.Sprintf("%016x", uint64(s.idSeq)*0x9e3779b97f4a7c15),
			Caller:       ari.CallerID{Name: spec.CallerName, Number: spec.CallerNumber},
			Dialplan:     ari.Dialplan{Context: ctx, Exten: exten, Priority: 1},
			CreationTime: now,
			Language:     "en",
			ChannelVars:  map[string]string{ari.LinkedIDVar: linked},
		},
		vars:     map[string]string{},
		endpoint: spec.Endpoint,
		created:  s.idSeq,
		subs:     map[string]bool{},
		answered: make(chan struct{}),
		gone:     make(chan struct{}),
	}
	if state == "Up" {
		close(ch.answered)
	}
	s.channels[id] = ch
	s.ledger.channelCreated(ch, s.clk.Now())
	if state == "Up" {
		s.ledger.channelAnswered(id, s.clk.Now())
	}
	return ch
}

// hangupRequest is one ChannelHangupRequest: cause nil means the key is absent (a remote BYE
// as recorded in 01–03).
type hangupRequest struct {
	cause *int
	tech  *int
	soft  bool
}

func intp(v int) *int { return &v }

var causeText = map[int]string{
	0:   "Unknown",
	1:   "Unallocated (unassigned) number",
	3:   "No route to destination",
	16:  "Normal Clearing",
	17:  "User busy",
	18:  "No user responding",
	19:  "User alerting, no answer",
	21:  "Call Rejected",
	26:  "Answered elsewhere",
	28:  "Invalid number format",
	31:  "Normal, unspecified",
	34:  "Circuit/channel congestion",
	38:  "Network out of order",
	58:  "Bearer capability not available",
	127: "Interworking, unspecified",
}

// destroyLocked ends a channel the way Asterisk does: hang-up request(s), leaving its bridge,
// StasisEnd to the owning app, ChannelDestroyed.
func (s *Server) destroyLocked(ch *channel, reqs []hangupRequest, cause int, tech *int, between func()) {
	if _, ok := s.channels[ch.snap.ID]; !ok {
		return
	}
	for _, r := range reqs {
		f := fields{}
		if r.cause != nil {
			f["cause"] = *r.cause
		}
		if r.tech != nil {
			f["tech_cause"] = *r.tech
		}
		if r.soft {
			f["soft"] = true
		}
		s.chanEventLocked(ari.EventChannelHangupRequest, ch, f)
		if between != nil {
			between()
			between = nil
		}
	}
	if ch.bridge != "" {
		s.leaveBridgeLocked(ch)
	}
	if ch.stasisApp != "" {
		s.emitLocked(ari.EventStasisEnd, fields{"channel": ch.snapshot()}, []string{ch.stasisApp})
		s.varsetLocked(ch, "STASISSTATUS", "SUCCESS")
		ch.stasisApp = ""
	}
	ch.snap.Dialplan.AppName, ch.snap.Dialplan.AppData = "", ""
	if ch.snap.Dialplan.Context == "from-sip" && ch.snap.Dialplan.Exten == "s" {
		// ARI legs show their dial app again in the final snapshot (traces 07–13).
		ch.snap.Dialplan.AppName, ch.snap.Dialplan.AppData = "AppDial2", "(Outgoing Line)"
	}
	s.dropPlaybacksLocked(ch.snap.ID)
	f := fields{"cause": cause, "cause_txt": causeText[cause]}
	if tech != nil {
		f["tech_cause"] = *tech
	}
	s.chanEventLocked(ari.EventChannelDestroyed, ch, f)
	delete(s.channels, ch.snap.ID)
	close(ch.gone)
	s.ledger.channelDestroyed(ch.snap.ID, s.clk.Now())
	s.phoneChangedLocked(ch.endpoint)
}

// Hangup hangs a channel up from the far end with a Q.850 cause: ChannelHangupRequest with
// that cause, leaving its bridge, StasisEnd, ChannelDestroyed with the same cause. Unknown ids
// are ignored.
func (s *Server) Hangup(id string, cause int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[id]
	if ch == nil {
		return
	}
	s.destroyLocked(ch, []hangupRequest{{cause: intp(cause)}}, cause, nil, nil)
}

// ---- bridges ----

func (s *Server) newBridgeLocked(id, name, class, creator string) *bridge {
	if id == "" {
		s.idSeq++
		id = fmt.Sprintf("%08x-0000-4000-8000-%012x", s.idSeq, s.idSeq)
	}
	video := "talker"
	if class == "basic" {
		video = "none"
	}
	b := &bridge{
		snap: ari.Bridge{
			ID: id, Technology: "simple_bridge", BridgeType: "mixing", BridgeClass: class,
			Creator: creator, Name: name, CreationTime: s.stamp(), VideoMode: video,
		},
		subs:     map[string]bool{},
		dialplan: class == "basic",
	}
	s.bridges[id] = b
	s.ledger.bridgeCreated(b, s.clk.Now())
	s.emitLocked(ari.EventBridgeCreated, fields{"bridge": b.snapshot()}, s.bridgeTargetsLocked(b))
	return b
}

func (s *Server) enterBridgeLocked(b *bridge, ch *channel) {
	if ch.bridge != "" {
		s.leaveBridgeLocked(ch)
	}
	if ch.stasisApp != "" {
		b.subs[ch.stasisApp] = true
	}
	b.members = append(b.members, ch.snap.ID)
	ch.bridge = b.snap.ID
	ch.bridged = true
	// Bridging copies the oldest linkedid to every member (trace 07: …458.64 → …449.63).
	var oldest *channel
	for _, id := range b.members {
		if m := s.channels[id]; m != nil && (oldest == nil || m.created < oldest.created) {
			oldest = m
		}
	}
	for _, id := range b.members {
		if m := s.channels[id]; m != nil {
			m.snap.ChannelVars[ari.LinkedIDVar] = oldest.snap.ChannelVars[ari.LinkedIDVar]
		}
	}
	s.emitLocked(ari.EventChannelEnteredBridge, fields{"bridge": b.snapshot(), "channel": ch.snapshot()},
		union(s.chanTargetsLocked(ch), s.bridgeTargetsLocked(b)))
	if len(b.members) == 2 {
		a, c := s.channels[b.members[0]], s.channels[b.members[1]]
		s.varsetLocked(a, "BRIDGEPEER", c.snap.Name)
		s.varsetLocked(c, "BRIDGEPEER", a.snap.Name)
		// The bridge makes each side's connected line the other's caller id (README §10).
		c.snap.Connected = a.snap.Caller
		s.chanEventLocked(ari.EventChannelConnectedLine, c, nil)
		a.snap.Connected = c.snap.Caller
		s.chanEventLocked(ari.EventChannelConnectedLine, a, nil)
	}
}

func (s *Server) leaveBridgeLocked(ch *channel) {
	b := s.bridges[ch.bridge]
	ch.bridge = ""
	if b == nil {
		return
	}
	kept := b.members[:0]
	for _, id := range b.members {
		if id != ch.snap.ID {
			kept = append(kept, id)
		}
	}
	b.members = kept
	if _, set := ch.vars["BRIDGEPEER"]; set {
		s.varsetLocked(ch, "BRIDGEPEER", "")
	}
	s.emitLocked(ari.EventChannelLeftBridge, fields{"bridge": b.snapshot(), "channel": ch.snapshot()},
		union(s.chanTargetsLocked(ch), s.bridgeTargetsLocked(b)))
	if b.dialplan && len(b.members) == 0 {
		s.destroyBridgeLocked(b)
	}
}

func (s *Server) destroyBridgeLocked(b *bridge) {
	for len(b.members) > 0 {
		if ch := s.channels[b.members[0]]; ch != nil {
			s.leaveBridgeLocked(ch)
		} else {
			b.members = b.members[1:]
		}
	}
	if _, ok := s.bridges[b.snap.ID]; !ok {
		return
	}
	delete(s.bridges, b.snap.ID)
	s.ledger.bridgeDestroyed(b.snap.ID, s.clk.Now())
	s.emitLocked(ari.EventBridgeDestroyed, fields{"bridge": b.snapshot()}, s.bridgeTargetsLocked(b))
}

// ---- scheduling ----

var errStopped = errors.New("aritest: server closed or restarted")

// sleep waits d on the server's clock; it fails when the server closes or restarts, or
// when gone (if not nil) closes first.
func (s *Server) sleep(epoch int, d time.Duration, gone <-chan struct{}) error {
	if d > 0 {
		select {
		case <-s.clk.After(d):
		case <-s.done:
			return errStopped
		case <-gone:
			return errGone
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch != epoch || s.closed {
		return errStopped
	}
	return nil
}

var errGone = errors.New("aritest: channel gone")

// goScriptLocked runs fn in a goroutine that Close waits for. The caller holds s.mu, which
// is what makes the closed check and wg.Add atomic with respect to Close. It reports false
// (and runs nothing) once the server is closed.
func (s *Server) goScriptLocked(fn func()) bool {
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// Drive advances a fake clock in steps of step until done is closed or the guard (wall
// clock) expires; tests use it so scripted delays pass instantly. It returns false when the
// guard expired.
func Drive(c *clock.Fake, step time.Duration, done <-chan struct{}, guard time.Duration) bool {
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return true
		case <-deadline.C:
			return false
		case <-tick.C:
			c.Advance(step)
		}
	}
}
