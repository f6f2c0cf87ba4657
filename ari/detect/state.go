package detect

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/queue"
)

// server is what the detector follows on one Asterisk.
type server struct {
	id      string
	calls   map[string]*call     // by linkedid (or the fallback group id)
	chans   map[string]*chanInfo // by channel id
	byName  map[string]string    // channel name → id, to pair Local halves without linkedid
	bridges map[string]map[string]bool
	seq     uint64
	// warnedNoLinkedID: the missing-channelvars warning is logged once per server, not per event.
	warnedNoLinkedID bool
	// ended remembers the channels of calls already over. Bridge events are not ordered with
	// channel events (a ChannelLeftBridge can follow the ChannelDestroyed), and after a resync
	// the new socket's buffered events can name channels the snapshot already closed out; such
	// late events must neither revive a call nor end it a second time.
	ended recentIDs
	// lastEvent is when the server last sent anything; a server is forgotten only when it has
	// no call and has been quiet for a sweep interval, so its ended memory outlives late events.
	lastEvent time.Time
}

// recentIDs is a bounded set: the newest endedMemory ids, the oldest forgotten first.
type recentIDs struct {
	set  map[string]bool
	ring []string
	next int
}

// endedMemory bounds how many ended channels a server remembers; late events come within
// moments, so a few thousand cover any burst of calls ending together.
const endedMemory = 4096

func (r *recentIDs) add(id string) {
	if r.set == nil {
		r.set = make(map[string]bool, endedMemory)
		r.ring = make([]string, endedMemory)
	}
	if r.set[id] {
		return
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = id
	r.next = (r.next + 1) % endedMemory
	r.set[id] = true
}

func (r *recentIDs) has(id string) bool { return r.set[id] }

// chanInfo is one channel as last seen.
type chanInfo struct {
	id, name     string
	res          string // endpoint resource from the name: "1003", "trunk", Local exten
	local        bool
	callerNum    string
	callerName   string
	firstContext string
	exten        string
	hasLinkedVar bool
	ours         bool
	destroyed    bool
	forwardOf    string // the extension whose call forward created this channel
	consult      bool   // a Local half of a DTMF attended-transfer consultation
	transferred  bool   // …whose transfer was completed
	app, appData string
	group        *dialGroup // the Dial() this channel is running
	mailboxes    []string   // the VoiceMail() this channel is running
	call         *call
}

// dialGroup is one dialplan Dial(): the extensions it rings and the target they stand for.
type dialGroup struct {
	key     string
	members []string
	queue   bool // Queue(): members are whoever it rings
}

// call is the channels of one linkedid.
type call struct {
	linkedID string
	seq      uint64
	origin   *chanInfo
	members  map[string]*chanInfo
	live     int
	ours     bool
	targets  []*target
	lastSeen time.Time
}

// target is one destination the customer was sent to.
type target struct {
	key     string
	members []string
	tried   bool
	reached bool
	message bool
}

type customerInfo struct {
	number, name, channel string
}

// EventTypes lists the event types the detector reads, for the monitor app's ARI eventFilter:
// Asterisk can then drop playback, device-state and endpoint events before they reach us.
// ChannelVarset stays: VM_MESSAGEFILE and ATTENDEDTRANSFER arrive as variables.
func EventTypes() []ari.EventType {
	return []ari.EventType{
		ari.EventChannelCreated, ari.EventChannelDestroyed, ari.EventChannelDialplan,
		ari.EventChannelVarset, ari.EventChannelCallerID, ari.EventChannelStateChange,
		ari.EventDial, ari.EventChannelEnteredBridge, ari.EventChannelLeftBridge,
		ari.EventBridgeDestroyed, ari.EventBridgeBlindTransfer, ari.EventBridgeAttendedTransfer,
		ari.EventStasisStart,
	}
}

// ignoredEvent reports the event types the detector knows and does not need.
func ignoredEvent(typ ari.EventType) bool {
	switch typ {
	case ari.EventBridgeCreated, ari.EventBridgeMerged, ari.EventBridgeVideoSourceChanged,
		ari.EventDeviceStateChanged, ari.EventPeerStatusChange, ari.EventContactStatusChange,
		ari.EventEndpointStateChange, ari.EventPlaybackStarted, ari.EventPlaybackContinuing,
		ari.EventPlaybackFinished, ari.EventRecordingStarted, ari.EventRecordingFinished,
		ari.EventRecordingFailed, ari.EventApplicationReplaced, ari.EventApplicationMoveFailed,
		ari.EventApplicationRegistered, ari.EventApplicationUnregistered,
		ari.EventTextMessageReceived, ari.EventChannelTransfer, ari.EventMissingParams:
		return true
	}
	return false
}

// snapshotEvent reports the types whose only use here is keeping the channel snapshot current.
func snapshotEvent(typ ari.EventType) bool {
	switch typ {
	case ari.EventChannelCreated, ari.EventChannelStateChange, ari.EventChannelCallerID,
		ari.EventChannelConnectedLine, ari.EventChannelHangupRequest, ari.EventChannelHold,
		ari.EventChannelUnhold, ari.EventChannelTalkingStarted, ari.EventChannelTalkingFinished,
		ari.EventChannelDtmfReceived, ari.EventChannelUserevent, ari.EventChannelToneDetected,
		ari.EventStasisStart, ari.EventStasisEnd:
		return true
	}
	return false
}

func (d *Detector) server(id string) *server {
	s := d.servers[id]
	if s == nil {
		s = &server{id: id, calls: map[string]*call{}, chans: map[string]*chanInfo{},
			byName: map[string]string{}, bridges: map[string]map[string]bool{}}
		d.servers[id] = s
	}
	return s
}

func (d *Detector) handle(ev *ari.Event) {
	d.stats.Events++
	if ev == nil {
		d.stats.Malformed++
		return
	}
	now := d.clock.Now()
	d.maybeSweep(now)
	at, err := ev.Time()
	if err != nil {
		at = now
	}
	d.evAt = at
	srv := d.server(ev.AsteriskID)
	srv.lastEvent = now
	if d.late(srv, ev) {
		d.stats.Late++
		return
	}
	// The control applications see only channels they own or created, so anything they
	// report is ours.
	fromControl := d.control[ev.Application]
	ok := true
	switch {
	case snapshotEvent(ev.Type):
		ok = d.observe(srv, ev.Channel, fromControl, now) != nil
	case ev.Type == ari.EventChannelDialplan:
		ok = d.onDialplan(srv, ev, fromControl, now, at)
	case ev.Type == ari.EventChannelVarset:
		if ev.Channel != nil { // a global variable has no channel
			ok = d.onVarset(srv, ev, fromControl, now)
		}
	case ev.Type == ari.EventChannelDestroyed:
		ok = d.onDestroyed(srv, ev, fromControl, at)
	case ev.Type == ari.EventDial:
		ok = d.onDial(srv, ev, fromControl, now, at)
	case ev.Type == ari.EventChannelEnteredBridge:
		ok = d.onEnteredBridge(srv, ev, fromControl, now, at)
	case ev.Type == ari.EventChannelLeftBridge:
		ok = ev.Bridge != nil && d.observe(srv, ev.Channel, fromControl, now) != nil
		if ok {
			delete(srv.bridges[ev.Bridge.ID], ev.Channel.ID)
		}
	case ev.Type == ari.EventBridgeDestroyed:
		ok = ev.Bridge != nil
		if ok {
			delete(srv.bridges, ev.Bridge.ID)
		}
	case ev.Type == ari.EventBridgeBlindTransfer:
		ok = d.onBlindTransfer(srv, ev, fromControl, now, at)
	case ev.Type == ari.EventBridgeAttendedTransfer:
		ok = d.onAttendedTransfer(srv, ev, fromControl, now, at)
	case ignoredEvent(ev.Type):
	default:
		d.stats.Unknown++
		return
	}
	if !ok {
		d.stats.Malformed++
		d.log.Debug("skipping malformed event", zap.String("type", string(ev.Type)))
	}
}

// observe records what a channel snapshot says and returns the channel, or nil when the
// snapshot is unusable.
func (d *Detector) observe(srv *server, snap *ari.Channel, fromControl bool, now time.Time) *chanInfo {
	if snap == nil || snap.ID == "" {
		return nil
	}
	ch := srv.chans[snap.ID]
	lid := snap.LinkedID()
	if lid == "" && !srv.warnedNoLinkedID {
		srv.warnedNoLinkedID = true
		d.log.Warn("ARI channel snapshots carry no linkedid: add `channelvars = CHANNEL(linkedid)` to ari.conf [general]; "+
			"until then calls are grouped by following dials, Local pairs and bridges, which can split a call",
			zap.String("asterisk_id", srv.id), zap.String("channel", snap.Name))
	}
	if ch == nil {
		ch = &chanInfo{id: snap.ID, firstContext: snap.Dialplan.Context}
		srv.chans[snap.ID] = ch
	}
	if snap.Name != "" && snap.Name != ch.name {
		if ch.name != "" && srv.byName[ch.name] == ch.id {
			delete(srv.byName, ch.name)
		}
		ch.name = snap.Name
		ch.res, ch.local = endpointResource(snap.Name)
		srv.byName[snap.Name] = ch.id
	}
	ch.callerNum, ch.callerName = snap.Caller.Number, snap.Caller.Name
	if snap.Dialplan.Exten != "" {
		ch.exten = snap.Dialplan.Exten
	}
	if lid != "" {
		ch.hasLinkedVar = true
	}
	switch {
	case ch.call == nil:
		if lid == "" {
			lid = d.fallbackGroup(srv, ch)
		}
		d.join(srv, ch, lid, now)
	case lid != "" && lid != ch.call.linkedID:
		d.move(srv, ch, lid, now, d.evAt)
	}
	if fromControl || d.ariApp(snap.Dialplan.AppName, snap.Dialplan.AppData) {
		d.markOurs(ch)
	}
	ch.call.lastSeen = now
	return ch
}

// ariApp reports whether a channel running this dialplan application belongs to an ARI
// application of ours: AppDial2 is the placeholder of channels originated through ARI (or any
// other originate: never a customer calling in), Stasis(app) of a control application.
func (d *Detector) ariApp(app, data string) bool {
	switch {
	case strings.EqualFold(app, "AppDial2"):
		return true
	case strings.EqualFold(app, "Stasis"):
		return d.control[stasisApp(data)]
	}
	return false
}

// fallbackGroup picks the call of a channel seen without a linkedid: the ;2 half of a Local
// pair belongs with the ;1 half, anything else starts its own call until a Dial or a bridge
// links it.
func (d *Detector) fallbackGroup(srv *server, ch *chanInfo) string {
	if partner, ok := localPartner(ch.name); ok && ch.local {
		if pid, ok := srv.byName[partner]; ok {
			if p := srv.chans[pid]; p != nil && p.call != nil {
				return p.call.linkedID
			}
		}
	}
	return ch.id
}

func (d *Detector) markOurs(ch *chanInfo) {
	ch.ours = true
	if ch.call != nil {
		ch.call.ours = true
	}
}

func (d *Detector) join(srv *server, ch *chanInfo, lid string, now time.Time) {
	c := srv.calls[lid]
	if c == nil {
		srv.seq++
		c = &call{linkedID: lid, seq: srv.seq, members: map[string]*chanInfo{}, lastSeen: now}
		srv.calls[lid] = c
		d.stats.Calls++
	}
	c.members[ch.id] = ch
	if !ch.destroyed {
		c.live++
	}
	if ch.id == lid {
		c.origin = ch
	}
	if ch.ours {
		c.ours = true
	}
	ch.call = c
}

// move puts a channel into another call, as Asterisk does when bridging copies the oldest
// linkedid to every member. What the old call learned stays with it; if the channel was its
// last one, the old call is over.
func (d *Detector) move(srv *server, ch *chanInfo, lid string, now, at time.Time) {
	old := ch.call
	if old != nil {
		if old.linkedID == lid {
			return
		}
		delete(old.members, ch.id)
		if !ch.destroyed {
			old.live--
		}
	}
	d.join(srv, ch, lid, now)
	if old != nil && old.live <= 0 {
		d.finalize(srv, old, at)
	}
}

func (d *Detector) onDialplan(srv *server, ev *ari.Event, fromControl bool, now, at time.Time) bool {
	ch := d.observe(srv, ev.Channel, fromControl, now)
	if ch == nil {
		return false
	}
	app, data := ev.DialplanApp, ev.DialplanAppData
	if app == "" {
		app, data = ev.Channel.Dialplan.AppName, ev.Channel.Dialplan.AppData
	}
	// A blind transfer shows the new exten with the old application once more: the same
	// application still running is not a new attempt.
	if app == ch.app && data == ch.appData {
		return true
	}
	ch.app, ch.appData = app, data
	ch.group, ch.mailboxes = nil, nil
	switch {
	case strings.EqualFold(app, "Dial"):
		if d.isStaff(ch) || ch.ours {
			return true
		}
		var members []string
		for _, r := range dialResources(data) {
			if d.internal.MatchString(r) {
				members = append(members, r)
			}
		}
		if len(members) == 0 {
			return true
		}
		key := members[0]
		if d.internal.MatchString(ch.exten) {
			key = ch.exten
		}
		ch.group = &dialGroup{key: key, members: members}
		if !d.consulting(srv, ch) {
			ch.call.tried(key, members)
		}
	case strings.EqualFold(app, "Queue"):
		// A queue is one destination whatever members it rings; its name is the target.
		name, _, _ := strings.Cut(data, ",")
		if name = strings.TrimSpace(name); name == "" || d.isStaff(ch) || ch.ours {
			return true
		}
		ch.group = &dialGroup{key: name, queue: true}
		if !d.consulting(srv, ch) {
			ch.call.tried(name, nil)
		}
	case strings.EqualFold(app, "VoiceMail"):
		ch.mailboxes = voicemailBoxes(data)
	case d.ariApp(app, data):
		d.markOurs(ch)
	}
	return true
}

func (d *Detector) onVarset(srv *server, ev *ari.Event, fromControl bool, now time.Time) bool {
	ch := d.observe(srv, ev.Channel, fromControl, now)
	if ch == nil {
		return false
	}
	if ev.Variable == "ATTENDEDTRANSFER" && ch.local {
		ch.consult = true
		return true
	}
	if ev.Variable != "VM_MESSAGEFILE" || strings.TrimSpace(ev.Value) == "" {
		return true
	}
	boxes := ch.mailboxes
	if len(boxes) == 0 {
		if b := mailboxFromMessageFile(ev.Value); b != "" {
			boxes = []string{b}
		}
	}
	for _, b := range boxes {
		ch.call.target(b, []string{b}).message = true
	}
	return true
}

func (d *Detector) onDestroyed(srv *server, ev *ari.Event, fromControl bool, at time.Time) bool {
	if ev.Channel == nil || ev.Channel.ID == "" {
		return false
	}
	if srv.chans[ev.Channel.ID] == nil {
		// Never seen alive (or its call is already over): nothing to follow.
		return true
	}
	ch := d.observe(srv, ev.Channel, fromControl, d.clock.Now())
	if ch.destroyed {
		return true
	}
	ch.destroyed = true
	c := ch.call
	c.live--
	if c.live <= 0 {
		d.finalize(srv, c, at)
	}
	return true
}

func (d *Detector) onDial(srv *server, ev *ari.Event, fromControl bool, now, at time.Time) bool {
	peer := d.observe(srv, ev.Peer, fromControl, now)
	if peer == nil {
		return false
	}
	if ev.Caller == nil {
		// Dialplan Dial() always has a calling channel; ARI originate and /dial never do.
		d.markOurs(peer)
		return true
	}
	caller := d.observe(srv, ev.Caller, fromControl, now)
	if caller == nil {
		return false
	}
	if !peer.hasLinkedVar && peer.call != caller.call {
		d.move(srv, peer, caller.call.linkedID, now, at)
	}
	if caller.ours || d.isStaff(caller) || d.consulting(srv, caller) {
		return true
	}
	res := peer.res
	if peer.forwardOf != "" {
		res = peer.forwardOf
	}
	if !d.internal.MatchString(res) && !(caller.group != nil && caller.group.queue) {
		res, _, _ = strings.Cut(ev.DialString, "@")
		if !d.internal.MatchString(res) {
			return true
		}
	}
	if res == "" {
		return true
	}
	key, members := res, []string{res}
	if g := caller.group; g != nil && (g.queue || slices.Contains(g.members, res)) {
		if g.queue && !slices.Contains(g.members, res) {
			g.members = append(g.members, res)
		}
		key, members = g.key, g.members
	}
	t := caller.call.target(key, members)
	t.tried = true
	if !slices.Contains(t.members, res) {
		t.members = append(t.members, res)
	}
	if ev.Forwarded != nil {
		// The extension forwarded the call (to a mobile, say): whoever answers the forward
		// answers for it.
		if fwd := d.observe(srv, ev.Forwarded, fromControl, now); fwd != nil {
			fwd.forwardOf = res
		}
	}
	if ev.DialStatus == "ANSWER" {
		d.reached(srv, caller.call, res, at)
	}
	return true
}

func (d *Detector) onEnteredBridge(srv *server, ev *ari.Event, fromControl bool, now, at time.Time) bool {
	if ev.Bridge == nil || ev.Bridge.ID == "" {
		return false
	}
	ch := d.observe(srv, ev.Channel, fromControl, now)
	if ch == nil {
		return false
	}
	members := srv.bridges[ev.Bridge.ID]
	if members == nil || len(ev.Bridge.Channels) > 0 {
		// The event's bridge snapshot is the membership now; what was remembered may be stale
		// (a ChannelLeftBridge missed while the socket was down).
		members = map[string]bool{}
		srv.bridges[ev.Bridge.ID] = members
	}
	for _, id := range ev.Bridge.Channels {
		if srv.chans[id] != nil {
			members[id] = true
		}
	}
	members[ch.id] = true
	if !ch.hasLinkedVar {
		// Without linkedids do what Asterisk does: the bridge joins the oldest call.
		var oldest *call
		for id := range members {
			if m := srv.chans[id]; m != nil && m.call != nil && (oldest == nil || m.call.seq < oldest.seq) {
				oldest = m.call
			}
		}
		if oldest != nil && oldest != ch.call {
			d.move(srv, ch, oldest.linkedID, now, at)
		}
	}
	for id := range members {
		o := srv.chans[id]
		if o == nil || o == ch {
			continue
		}
		if x := d.phoneExt(o); x != "" && !d.isStaff(ch) {
			d.reached(srv, ch.call, x, at)
		}
		if x := d.phoneExt(ch); x != "" && !d.isStaff(o) {
			d.reached(srv, o.call, x, at)
		}
	}
	return true
}

func (d *Detector) onBlindTransfer(srv *server, ev *ari.Event, fromControl bool, now, at time.Time) bool {
	if ev.Channel != nil {
		d.observe(srv, ev.Channel, fromControl, now)
	}
	if ev.Transferee == nil {
		return ev.Channel != nil
	}
	t := d.observe(srv, ev.Transferee, fromControl, now)
	if t == nil {
		return false
	}
	// Success only means the transferee was sent to exten@context; the Dial that follows
	// says whether anyone answered.
	if ev.Result == "Success" && d.internal.MatchString(ev.Exten) && !t.ours {
		t.call.tried(ev.Exten, []string{ev.Exten})
	}
	return true
}

func (d *Detector) onAttendedTransfer(srv *server, ev *ari.Event, fromControl bool, now, at time.Time) bool {
	for _, c := range []*ari.Channel{ev.TransfererFirstLeg, ev.TransfererSecondLeg} {
		if c != nil {
			d.observe(srv, c, fromControl, now)
		}
	}
	if ev.Transferee == nil || ev.TransferTarget == nil {
		return ev.TransfererFirstLeg != nil
	}
	tee := d.observe(srv, ev.Transferee, fromControl, now)
	tgt := d.observe(srv, ev.TransferTarget, fromControl, now)
	if tee == nil || tgt == nil {
		return false
	}
	if ev.Result != "Success" || tee.ours {
		return true
	}
	ext := d.phoneExt(tgt)
	if tgt.local {
		tgt.transferred = true
		d.replayGroup(tgt)
		if p := d.partner(srv, tgt); p != nil {
			p.transferred = true
			d.replayGroup(p)
		}
		if d.internal.MatchString(tgt.res) {
			ext = tgt.res
		}
	}
	if ext == "" {
		return true
	}
	tee.call.tried(ext, []string{ext})
	// Completing the transfer to a target that already answered the consultation connects
	// the transferee to it; a target still ringing is decided by its Dial.
	if !tgt.local && ev.TransferTarget.State == "Up" {
		d.reached(srv, tee.call, ext, at)
	}
	return true
}

// consulting reports whether ch is a Local half of a DTMF attended-transfer consultation that
// has not been completed. The operator's consultation shares the customer's linkedid (the
// operator's leg has it), but the customer is sent to the target only if the operator
// completes the transfer (BridgeAttendedTransfer); an abandoned consultation is not an attempt.
func (d *Detector) consulting(srv *server, ch *chanInfo) bool {
	if !ch.local {
		return false
	}
	p := d.partner(srv, ch)
	consult := ch.consult || (p != nil && p.consult)
	done := ch.transferred || (p != nil && p.transferred)
	return consult && !done
}

// partner is the other half of a Local pair, if known.
func (d *Detector) partner(srv *server, ch *chanInfo) *chanInfo {
	name, ok := localPartner(ch.name)
	if !ok {
		return nil
	}
	return srv.chans[srv.byName[name]]
}

// replayGroup registers the Dial() a consultation channel is running once its transfer is
// completed: from then on the customer is the one waiting for that target.
func (d *Detector) replayGroup(ch *chanInfo) {
	if g := ch.group; g != nil && ch.call != nil {
		ch.call.tried(g.key, g.members)
	}
}

// isStaff reports whether a channel is an internal phone user's: its caller number is an
// internal extension. Local channels carry whatever caller id they were given and are never
// staff.
func (d *Detector) isStaff(ch *chanInfo) bool {
	return !ch.local && d.internal.MatchString(ch.callerNum)
}

// phoneExt is the internal extension whose phone a channel is, or "".
func (d *Detector) phoneExt(ch *chanInfo) string {
	if ch.local {
		return ""
	}
	if d.internal.MatchString(ch.res) {
		return ch.res
	}
	if d.internal.MatchString(ch.callerNum) {
		return ch.callerNum
	}
	return ""
}

// target returns the call's target for key, adding it in order of first mention.
func (c *call) target(key string, members []string) *target {
	for _, t := range c.targets {
		if t.key == key {
			return t
		}
	}
	t := &target{key: key, members: members}
	c.targets = append(c.targets, t)
	return t
}

func (c *call) tried(key string, members []string) {
	c.target(key, members).tried = true
}

// reached marks ext, and every ring group it belongs to, as reached, and resolves earlier
// requests of this customer for them.
func (d *Detector) reached(srv *server, c *call, ext string, at time.Time) {
	var newly []string
	found := false
	for _, t := range c.targets {
		if t.key == ext || slices.Contains(t.members, ext) {
			found = found || t.key == ext
			if !t.reached {
				t.reached = true
				newly = append(newly, t.key)
			}
		}
	}
	if !found {
		c.targets = append(c.targets, &target{key: ext, members: []string{ext}, reached: true})
		newly = append(newly, ext)
	}
	if c.ours {
		return
	}
	cust := d.customerOf(c)
	if cust == nil {
		return
	}
	for _, k := range newly {
		if d.recent.take(cust.number, k) {
			d.emitResolved(Resolution{Number: cust.number, Target: k, AsteriskID: srv.id,
				LinkedID: c.linkedID, At: at.UTC()})
		}
	}
}

// customerOf returns the call's customer, or nil when the call did not come from one.
func (d *Detector) customerOf(c *call) *customerInfo {
	o := c.origin
	if o == nil || o.local || o.ours {
		return nil
	}
	num := strings.TrimSpace(o.callerNum)
	if num == "" || d.internal.MatchString(num) {
		return nil
	}
	if !d.inbound[o.firstContext] && !d.customer.MatchString(num) {
		return nil
	}
	e164, err := normalizeNumber(num, d.countryCode)
	if err != nil {
		d.log.Warn("customer call with a caller number that cannot be called back",
			zap.String("number", d.mask(num)), zap.String("linkedid", c.linkedID), zap.Error(err))
		return nil
	}
	return &customerInfo{number: e164, name: o.callerName, channel: o.id}
}

// finalize ends a call: it forgets the call and emits what it deserves.
func (d *Detector) finalize(srv *server, c *call, at time.Time) {
	d.forget(srv, c)
	if c.ours {
		return
	}
	cust := d.customerOf(c)
	if cust == nil {
		return
	}
	for _, t := range c.targets {
		var reason queue.Reason
		switch {
		case t.message:
			reason = queue.ReasonVoicemail
		case t.tried && !t.reached:
			reason = queue.ReasonUnansweredTransfer
		default:
			continue
		}
		d.emitRequest(Request{AsteriskID: srv.id, LinkedID: c.linkedID, Number: cust.number,
			Name: cust.name, Reason: reason, Target: t.key, Channel: cust.channel, At: at.UTC()})
	}
}

// late reports an event about a channel of a call that is already over (see server.ended).
// ChannelCreated always starts something new: Asterisk never reuses a channel id.
func (d *Detector) late(srv *server, ev *ari.Event) bool {
	if ev.Type == ari.EventChannelCreated {
		return false
	}
	for _, ch := range []*ari.Channel{ev.Channel, ev.Peer} {
		if ch != nil && srv.ended.has(ch.ID) {
			return true
		}
	}
	return false
}

// forget drops a call and the channels that are still its members.
func (d *Detector) forget(srv *server, c *call) {
	if srv.calls[c.linkedID] == c {
		delete(srv.calls, c.linkedID)
	}
	for id, ch := range c.members {
		srv.ended.add(id)
		if srv.chans[id] == ch {
			delete(srv.chans, id)
			if srv.byName[ch.name] == id {
				delete(srv.byName, ch.name)
			}
		}
		for bid, m := range srv.bridges {
			if delete(m, id); len(m) == 0 {
				delete(srv.bridges, bid)
			}
		}
	}
}

func (d *Detector) maybeSweep(now time.Time) {
	if now.Sub(d.lastSweep) < sweepInterval {
		return
	}
	d.lastSweep = now
	for id, srv := range d.servers {
		for _, c := range srv.calls {
			if now.Sub(c.lastSeen) > idleLimit {
				d.log.Warn("dropping a call idle for too long (lost ChannelDestroyed?)",
					zap.String("asterisk_id", srv.id), zap.String("linkedid", c.linkedID))
				d.forget(srv, c)
			}
		}
		// Events naming servers that have nothing to follow (or a hostile stream of made-up
		// asterisk_ids) leave no state behind.
		if len(srv.calls) == 0 && now.Sub(srv.lastEvent) > sweepInterval {
			delete(d.servers, id)
		}
	}
}

func (d *Detector) resync(snap ari.Snapshot) {
	srv := d.server(snap.AsteriskID)
	srv.lastEvent = d.clock.Now()
	at := snap.At
	if at.IsZero() {
		at = d.clock.Now()
	}
	present := make(map[string]bool, len(snap.Channels))
	for i := range snap.Channels {
		present[snap.Channels[i].ID] = true
	}
	calls := make([]*call, 0, len(srv.calls))
	for _, c := range srv.calls {
		calls = append(calls, c)
	}
	slices.SortFunc(calls, func(a, b *call) int { return cmp.Compare(a.seq, b.seq) })
	for _, c := range calls {
		if !snap.Restarted {
			for id, ch := range c.members {
				if !ch.destroyed && !present[id] {
					ch.destroyed = true
					c.live--
				}
			}
			if c.live > 0 {
				continue
			}
		}
		d.finalize(srv, c, at)
	}
	// Bridges as they are now: joins and leaves while disconnected were not seen, and a stale
	// member could later be taken for the phone a customer reached.
	srv.bridges = make(map[string]map[string]bool, len(snap.Bridges))
	if !snap.Restarted {
		for _, b := range snap.Bridges {
			m := map[string]bool{}
			for _, id := range b.Channels {
				if srv.chans[id] != nil {
					m[id] = true
				}
			}
			if len(m) > 0 {
				srv.bridges[b.ID] = m
			}
		}
	}
}
