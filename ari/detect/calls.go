package detect

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
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
	// dirty are the calls the event being handled changed in a way the Memory keeps.
	dirty []*call
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
	firstExten   string // where the channel entered the dialplan: for a customer, the DID
	exten        string
	hasLinkedVar bool
	ours         bool
	// originated: created by Asterisk's dial API (an originate, a transfer's recall of the
	// transferer, a Page() leg): never a customer calling in, but not callbackd's either.
	originated   bool
	destroyed    bool
	forwardOf    string        // the extension whose call forward created this channel
	consult      *consultation // a Local half of a DTMF attended-transfer consultation
	app, appData string
	group        *dialGroup // the Dial() this channel is running
	mailboxes    []string   // the VoiceMail() this channel is running
	// vmOver: app_voicemail set VMSTATUS, so the VoiceMail() in mailboxes has ended and what
	// it left (VM_MESSAGEFILE comes before VMSTATUS) is known.
	vmOver bool
	call   *call
	// e164 is callerNum read as a number that can be called back (e164Err why not), for the
	// callerNum in e164Of: the origin's number is asked for at many events of its call, and
	// libphonenumber's parse is the detector's dearest step.
	e164, e164Of string
	e164Err      error
}

// dialGroup is one dialplan Dial(): the extensions it rings and the target they stand for.
type dialGroup struct {
	key     string
	members []string
	queue   bool   // Queue(): members are whoever it rings
	dial    string // Dial()'s destinations, as written
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
	srv      *server
	// consults are the attended-transfer consultations made on this call's behalf.
	consults []*consultation
	// dirty: to be rewritten in the Memory after this event; kept: the Memory has it;
	// restored: taken from the Memory and not yet reconciled with a resync.
	dirty, kept, restored bool
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
		ch = &chanInfo{id: snap.ID, firstContext: snap.Dialplan.Context, firstExten: snap.Dialplan.Exten,
			ours: ari.IsCallbackLeg(snap.ID)}
		srv.chans[snap.ID] = ch
	}
	renamed := snap.Name != "" && snap.Name != ch.name
	if renamed {
		d.rename(srv, ch, snap.Name)
	}
	if ch.call != nil && (renamed || (ch == ch.call.origin &&
		(ch.callerNum != snap.Caller.Number || ch.callerName != snap.Caller.Name))) {
		ch.call.changed()
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
	if fromControl || d.controlStasis(snap.Dialplan.AppName, snap.Dialplan.AppData) {
		d.markOurs(ch)
	}
	if dialAPIApp(snap.Dialplan.AppName) {
		d.markOriginated(ch)
	}
	ch.call.lastSeen = now
	return ch
}

// rename gives ch the channel name name (first seen, or after a masquerade).
func (d *Detector) rename(srv *server, ch *chanInfo, name string) {
	if name == "" {
		return
	}
	if ch.name != "" && srv.byName[ch.name] == ch.id {
		delete(srv.byName, ch.name)
	}
	ch.name = name
	ch.res, ch.local = endpointResource(name)
	srv.byName[name] = ch.id
}

// markOriginated notes a channel of the dial API; if it is the call's origin, the call is
// no customer's and the Memory need not keep it.
func (d *Detector) markOriginated(ch *chanInfo) {
	if !ch.originated && ch.call != nil && ch.call.origin == ch {
		ch.call.changed()
	}
	ch.originated = true
}

// controlStasis reports whether a channel running this dialplan application is in Stasis() of
// one of our control applications.
func (d *Detector) controlStasis(app, data string) bool {
	return strings.EqualFold(app, "Stasis") && d.control[stasisApp(data)]
}

// dialAPIApp reports the placeholder application main/dial.c gives every channel it dials:
// ARI and AMI originates, call files, ARI /channels/create, Page(), SLA, calendar alerts and
// the recall of an attended transfer's transferer (main/bridge_basic.c, trace 14). Such a
// channel is never a customer calling in, but it is not callbackd's own either.
func dialAPIApp(app string) bool { return strings.EqualFold(app, "AppDial2") }

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
	if ch.call != nil && !ch.call.ours {
		ch.call.ours = true
		ch.call.changed()
	}
}

func (d *Detector) join(srv *server, ch *chanInfo, lid string, now time.Time) {
	c := srv.calls[lid]
	if c == nil {
		srv.seq++
		c = &call{linkedID: lid, seq: srv.seq, members: map[string]*chanInfo{}, lastSeen: now, srv: srv}
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
	c.changed()
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
		old.changed()
	}
	d.join(srv, ch, lid, now)
	if old != nil && old.live <= 0 {
		d.finalize(srv, old, at)
	}
}

// late reports an event about a channel of a call that is already over (see server.ended).
// A ChannelCreated of an ended channel is a copy (the old socket's last frames after a
// reconnect): Asterisk gives a channel id to one live channel at a time, so following it would
// only keep a call nothing ends. An event about its channel (or its peer) is late when that one
// ended; a transfer, which names several, only when every one it names ended: one leg of a
// transfer may well be gone by the time its bridge event is read.
func (d *Detector) late(srv *server, ev *ari.Event) bool {
	for _, ch := range []*ari.Channel{ev.Channel, ev.Peer} {
		if ch != nil && srv.ended.has(ch.ID) {
			return true
		}
	}
	if ev.Channel != nil || ev.Peer != nil {
		return false
	}
	named := 0
	for _, ch := range []*ari.Channel{ev.Caller, ev.Forwarded, ev.ReplaceChannel,
		ev.Transferee, ev.TransfererFirstLeg, ev.TransfererSecondLeg, ev.TransferTarget,
		ev.DestinationLinkFirstLeg, ev.DestinationLinkSecondLeg, ev.DestinationThreewayChannel} {
		if ch == nil {
			continue
		}
		if !srv.ended.has(ch.ID) {
			return false
		}
		named++
	}
	return named > 0
}

// forget drops a call and the channels that are still its members.
func (d *Detector) forget(srv *server, c *call) {
	if srv.calls[c.linkedID] == c {
		delete(srv.calls, c.linkedID)
	}
	if c.kept {
		c.kept = false
		d.dropKept(srv, c)
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
	defer d.keepChanged(srv)
	d.adoptSnapshot(srv, snap, srv.lastEvent)
	present := make(map[string]bool, len(snap.Channels))
	for i := range snap.Channels {
		present[snap.Channels[i].ID] = true
		if !snap.Restarted {
			d.voicemailInSnapshot(srv, &snap.Channels[i])
		}
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
					d.voicemailLost(c, ch)
					ch.destroyed = true
					c.live--
				}
			}
			if c.live > 0 {
				continue
			}
		} else {
			for _, ch := range c.members {
				if !ch.destroyed {
					d.voicemailLost(c, ch)
				}
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
			// Who shares a bridge now reached each other, also when the answer and the join
			// fell in the gap (found by the chaos suite: an answer lost in a 0.2 s drop).
			for id := range m {
				d.reachedWith(srv, srv.chans[id], m, at)
			}
		}
	}
}

// voicemailInSnapshot notes a followed channel the snapshot shows in VoiceMail() that the
// detector did not see enter it (its ChannelDialplan fell in the gap): should it vanish in a
// later gap, that VoiceMail() is what the gap interrupted.
func (d *Detector) voicemailInSnapshot(srv *server, snap *ari.Channel) {
	ch := srv.chans[snap.ID]
	if ch == nil || ch.destroyed || ch.call == nil || !strings.EqualFold(snap.Dialplan.AppName, "VoiceMail") {
		return
	}
	if ch.app == snap.Dialplan.AppName && ch.appData == snap.Dialplan.AppData && len(ch.mailboxes) > 0 {
		return
	}
	d.runApp(srv, ch, snap.Dialplan.AppName, snap.Dialplan.AppData)
}

// inVoicemail reports a channel running VoiceMail() whose end has not been seen.
func inVoicemail(ch *chanInfo) bool { return len(ch.mailboxes) > 0 && !ch.vmOver }

// voicemailLost records that ch, gone unseen (a socket gap, a restart), was in VoiceMail():
// VM_MESSAGEFILE, VMSTATUS and the hang-up fell in the gap, so whether a message was left
// can no longer be known. Its mailboxes owe the customer a voicemail callback all the same
// (finalize): calling back a caller who hung up in the greeting costs a call, not calling
// back one who left a message breaks the promise.
func (d *Detector) voicemailLost(c *call, ch *chanInfo) {
	if !inVoicemail(ch) || c.ours {
		return
	}
	for _, b := range ch.mailboxes {
		if t := c.target(b, []string{b}); !t.message && !t.vmGap {
			t.vmGap = true
			c.changed()
		}
	}
}
