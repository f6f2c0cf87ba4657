package detect

import (
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
)

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
	defer d.keepChanged(srv)
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
	d.runApp(srv, ch, app, data)
	return true
}

// runApp records that ch now runs the dialplan application app(data).
func (d *Detector) runApp(srv *server, ch *chanInfo, app, data string) {
	ch.app, ch.appData = app, data
	if ch.group != nil || inVoicemail(ch) {
		ch.call.changed()
	}
	ch.group, ch.mailboxes, ch.vmOver = nil, nil, false
	switch {
	case strings.EqualFold(app, "Dial"):
		if ch.ours {
			return
		}
		var members []string
		for _, r := range dialResources(data) {
			if d.internal.MatchString(r) {
				members = append(members, r)
			}
		}
		if len(members) == 0 {
			return
		}
		key := members[0]
		if d.internal.MatchString(ch.exten) {
			key = ch.exten
		}
		// A staff phone's own Dial() is remembered, not tried: it is what a SIP REFER
		// attended transfer hands the customer when it completes while the target rings.
		dial, _, _ := strings.Cut(data, ",")
		ch.group = &dialGroup{key: key, members: members, dial: dial}
		ch.call.changed()
		if !d.isStaff(ch) {
			if t := d.callOf(srv, ch).tried(key, members); t.dial == "" {
				t.dial = dial
			}
		}
	case strings.EqualFold(app, "Queue"):
		// A queue is one destination whatever members it rings; its name is the target.
		name, _, _ := strings.Cut(data, ",")
		if name = strings.TrimSpace(name); name == "" || d.isStaff(ch) || ch.ours {
			return
		}
		ch.group = &dialGroup{key: name, queue: true}
		ch.call.changed()
		d.callOf(srv, ch).tried(name, nil).queue = true
	case strings.EqualFold(app, "VoiceMail"):
		// Kept (Memory): a restart while the caller is in voicemail is a gap like any other.
		if ch.mailboxes = voicemailBoxes(data); len(ch.mailboxes) > 0 {
			ch.call.changed()
		}
	case d.controlStasis(app, data):
		d.markOurs(ch)
	case dialAPIApp(app):
		d.markOriginated(ch)
	}
}

func (d *Detector) onVarset(srv *server, ev *ari.Event, fromControl bool, now time.Time) bool {
	ch := d.observe(srv, ev.Channel, fromControl, now)
	if ch == nil {
		return false
	}
	if ev.Variable == "ATTENDEDTRANSFER" && ch.local {
		// Asterisk clears it ("") on the ;1 half once that half is in the consultation
		// bridge; the consultation goes on.
		if ev.Value != "" {
			d.startConsultation(srv, ch, ev.Value)
		}
		return true
	}
	if ev.Variable == "VMSTATUS" && ev.Value != "" && inVoicemail(ch) {
		// app_voicemail sets it as VoiceMail() returns: what the call left is known now.
		ch.vmOver = true
		ch.call.changed()
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
		if t := ch.call.target(b, []string{b}); !t.message {
			t.message = true
			ch.call.changed()
		}
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
		// Dialplan Dial() always has a calling channel; the dial API without a requester
		// (originates, ARI /dial, the recall of an attended transfer) never does.
		d.markOriginated(peer)
		return true
	}
	caller := d.observe(srv, ev.Caller, fromControl, now)
	if caller == nil {
		return false
	}
	if !peer.hasLinkedVar && peer.call != caller.call {
		d.move(srv, peer, caller.call.linkedID, now, at)
	}
	if caller.ours || d.isStaff(caller) {
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
			caller.call.changed()
		}
		key, members = g.key, g.members
	}
	c := d.callOf(srv, caller)
	t := c.tried(key, members)
	if g := caller.group; g != nil && t.dial == "" && t.key == g.key {
		t.dial, t.queue = g.dial, g.queue
		c.changed()
	}
	if !slices.Contains(t.members, res) {
		t.members = append(t.members, res)
		c.changed()
	}
	if ev.Forwarded != nil {
		// The extension forwarded the call (to a mobile, say): whoever answers the forward
		// answers for it.
		if fwd := d.observe(srv, ev.Forwarded, fromControl, now); fwd != nil {
			fwd.forwardOf = res
		}
	}
	if ev.DialStatus == "ANSWER" {
		d.reachedThrough(srv, caller, res, at)
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
	d.reachedWith(srv, ch, members, at)
	return true
}

// reachedWith records what ch reached by sharing a bridge with members, and what each of them
// reached through ch: a phone bridged with a caller is a reach of its extension.
func (d *Detector) reachedWith(srv *server, ch *chanInfo, members map[string]bool, at time.Time) {
	for id := range members {
		o := srv.chans[id]
		if o == nil || o == ch {
			continue
		}
		if x := d.phoneExt(o); x != "" && !d.isStaff(ch) {
			d.reachedThrough(srv, ch, x, at)
		}
		if x := d.phoneExt(ch); x != "" && !d.isStaff(o) {
			d.reachedThrough(srv, o, x, at)
		}
	}
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
	var legs []*chanInfo
	for _, c := range []*ari.Channel{ev.TransfererFirstLeg, ev.TransfererSecondLeg} {
		if c != nil {
			if l := d.observe(srv, c, fromControl, now); l != nil {
				legs = append(legs, l)
			}
		}
	}
	if ev.Transferee == nil {
		return ev.TransfererFirstLeg != nil
	}
	tee := d.observe(srv, ev.Transferee, fromControl, now)
	if tee == nil {
		return false
	}
	var tgt *chanInfo
	if ev.TransferTarget != nil {
		if tgt = d.observe(srv, ev.TransferTarget, fromControl, now); tgt == nil {
			return false
		}
	}
	if ev.Result != "Success" || tee.ours {
		return true
	}
	// A DTMF consultation (features.conf atxfer) is a Local pair: completing it hands the
	// customer the pair, and with it whoever answered the transferer there. A blonde
	// transfer (trace 14) names no transfer target at all, only the transferer.
	if d.completeConsultations(srv, tee, tgt, legs, at) || (tgt != nil && tgt.local) {
		return true
	}
	if tgt != nil {
		// SIP REFER with Replaces after the target answered the transferer's second call:
		// the two bridges are joined, so the customer is now talking to the target.
		ext := d.phoneExt(tgt)
		if ext == "" {
			return true
		}
		tee.call.tried(ext, []string{ext})
		if ev.TransferTarget.State == "Up" {
			d.reached(srv, tee.call, ext, at)
		}
		return true
	}
	// SIP REFER with Replaces while the target still rings (destination_type application):
	// the customer replaces the transferer's second call, which is dialling the target
	// (main/bridge.c ast_bridge_transfer_attended). That Dial() is the consulted target; the
	// Dial events that follow the masquerade say whether the customer reached it.
	for _, l := range legs {
		if g := l.group; g != nil && !g.queue {
			tee.call.tried(g.key, g.members)
			break
		}
	}
	return true
}

// consultation is one DTMF attended-transfer consultation (features.conf atxfer): Asterisk
// creates a Local/<ext>@<TRANSFER_CONTEXT> pair in the transferer's call, sets ATTENDEDTRANSFER
// (the transferer's channel name) on both halves, and the ;2 half runs the dialplan, typically
// Dial() of the extension. The consulted extension counts as tried on the customer's behalf
// from its Dial() on — an aborted (atxferabort) or timed-out (atxfernoanswertimeout)
// consultation is exactly a transfer that bounced back — but it counts as reached only once
// the customer has the pair: an answer while the transferer consults is the transferer's.
type consultation struct {
	transferer    string   // the transferer's channel name
	transfererExt string   // …and its extension, which the customer reaching again is no news
	call          *call    // the customer's call: the transferer's when the consultation began
	answered      []string // extensions that answered the transferer in the consultation
	completed     bool     // the transfer was completed: the customer now waits on the pair
	halves        []*chanInfo
}

// startConsultation attaches a consultation to a Local half and its partner. The transferer's
// call is found by name, so the consultation joins the customer's call even when no linkedid
// is exported.
func (d *Detector) startConsultation(srv *server, ch *chanInfo, transferer string) {
	cs := d.consultOf(srv, ch)
	if cs == nil {
		cs = &consultation{transferer: transferer, call: ch.call}
		if op := srv.chans[srv.byName[transferer]]; op != nil && op.call != nil {
			cs.call, cs.transfererExt = op.call, d.phoneExt(op)
		}
		cs.call.consults = append(cs.call.consults, cs)
	}
	cs.attach(ch)
	if p := d.partner(srv, ch); p != nil {
		cs.attach(p)
	}
}

// attach makes ch a half of the consultation; the customer's call keeps it (Memory).
func (cs *consultation) attach(ch *chanInfo) {
	ch.consult = cs
	if !slices.Contains(cs.halves, ch) {
		cs.halves = append(cs.halves, ch)
		if cs.call != nil {
			cs.call.changed()
		}
	}
}

// consultOf is the consultation a Local half belongs to, through itself or its partner.
func (d *Detector) consultOf(srv *server, ch *chanInfo) *consultation {
	if ch.consult != nil || !ch.local {
		return ch.consult
	}
	if p := d.partner(srv, ch); p != nil && p.consult != nil {
		p.consult.attach(ch)
	}
	return ch.consult
}

// callOf is the call a channel's attempts count for: a consultation's are the customer's.
func (d *Detector) callOf(srv *server, ch *chanInfo) *call {
	if cs := d.consultOf(srv, ch); cs != nil && cs.call != nil {
		return cs.call
	}
	return ch.call
}

// reachedThrough records that ch, a channel of a customer's call, was answered by or bridged
// with the phone of ext. In a consultation not yet completed that is the transferer talking to
// ext, which is noted for when the customer is handed over.
func (d *Detector) reachedThrough(srv *server, ch *chanInfo, ext string, at time.Time) {
	cs := d.consultOf(srv, ch)
	if cs == nil || cs.completed {
		d.reached(srv, d.callOf(srv, ch), ext, at)
		return
	}
	if ext != cs.transfererExt && !slices.Contains(cs.answered, ext) {
		cs.answered = append(cs.answered, ext)
		if cs.call != nil {
			cs.call.changed()
		}
	}
}

// completeConsultations marks the consultations of the transfer's transferer legs (or of its
// Local target) completed for the transferee, and reports whether there was any. Whoever
// answered the transferer there is now connected to the customer.
func (d *Detector) completeConsultations(srv *server, tee, tgt *chanInfo, legs []*chanInfo, at time.Time) bool {
	var done []*consultation
	if tgt != nil && tgt.local {
		if cs := d.consultOf(srv, tgt); cs != nil {
			done = append(done, cs)
		}
	}
	// Transfers are rare next to events, so a scan of the server's channels is cheap enough.
	for _, ch := range srv.chans {
		cs := ch.consult
		if cs == nil || cs.completed || slices.Contains(done, cs) {
			continue
		}
		for _, l := range legs {
			if l.name != "" && cs.transferer == l.name {
				done = append(done, cs)
				break
			}
		}
	}
	for _, cs := range done {
		if cs.completed {
			continue
		}
		cs.completed = true
		if cs.call == nil {
			cs.call = tee.call
			cs.call.consults = append(cs.call.consults, cs)
		}
		cs.call.changed()
		for _, ext := range cs.answered {
			d.reached(srv, cs.call, ext, at)
		}
	}
	return len(done) > 0
}

// partner is the other half of a Local pair, if known.
func (d *Detector) partner(srv *server, ch *chanInfo) *chanInfo {
	name, ok := localPartner(ch.name)
	if !ok {
		return nil
	}
	return srv.chans[srv.byName[name]]
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
