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
