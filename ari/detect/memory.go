package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/callbackd/callbackd/ari"
)

// Memory keeps the calls the detector follows outside its process (queue.CallMemory, in
// Redis), so a daemon restarted in the middle of a call still knows, when the call ends, what
// the customer tried and did not reach. The detector calls it from the goroutine that
// delivers events, after its lock is released: Keep and Drop must not wait for anything.
//
// A call is kept while it can owe a customer a callback: its originating channel looks like
// a customer calling in and it is not one of callbackd's own. It is rewritten only when what
// a restarted detector would need changes — a channel joins, a target is tried, reached or
// gets a message, a channel starts or stops a Dial() — never for the events that only keep a
// snapshot current; a hang-up rewrites nothing (the resync after a restart finds the channel
// gone).
type Memory interface {
	// Keep stores record, the whole state of call linkedID on Asterisk asteriskID, replacing
	// what was kept before.
	Keep(asteriskID, linkedID string, record []byte)
	// Drop forgets the call: it is over, or no longer one that can owe anything. A call that
	// ends is dropped after the Sink got its requests.
	Drop(asteriskID, linkedID string)
}

// recordVersion is the newest format of a kept call. A record of a version this daemon does
// not read is refused on restore: a restarted older daemon must not guess at a newer one's
// fields. Version 2 added a channel's VoiceMail() in progress and a target whose voicemail a
// gap interrupted; a record with neither is written as version 1, which every daemon reads.
const (
	recordVersion   = 2
	recordVersionV1 = 1
)

// callRecord is a kept call, as compact as JSON allows: the customer's channel, the channels
// still up, and the targets with what happened to each. What it leaves out — attended-transfer
// forwards, who shares a bridge — is rebuilt from the events and the resync after the restart.
type callRecord struct {
	V        int             `json:"v"`
	Asterisk string          `json:"a"`
	LinkedID string          `json:"l"`
	Origin   originRecord    `json:"o"`
	Members  []memberRecord  `json:"m"`
	Targets  []targetRecord  `json:"t,omitempty"`
	Consults []consultRecord `json:"c,omitempty"`
}

// consultRecord is an attended-transfer consultation made for the call: its Local halves may
// be in a call of their own (without linkedid), so they are named here.
type consultRecord struct {
	Transferer    string         `json:"t"`
	TransfererExt string         `json:"x,omitempty"`
	Answered      []string       `json:"a,omitempty"`
	Completed     bool           `json:"c,omitempty"`
	Halves        []memberRecord `json:"h,omitempty"`
}

// originRecord is the customer's channel: what customerOf and the request need of it.
type originRecord struct {
	ID         string `json:"i"`
	Name       string `json:"n,omitempty"`
	Number     string `json:"u"`
	CallerName string `json:"cn,omitempty"`
	Context    string `json:"c,omitempty"` // the context it entered the dialplan in
	Exten      string `json:"x,omitempty"` // …and the extension: the DID
}

// memberRecord is a channel of the call that was up when the record was written.
type memberRecord struct {
	ID    string       `json:"i"`
	Name  string       `json:"n,omitempty"`
	Group *groupRecord `json:"g,omitempty"`
	// Voicemail are the mailboxes of the VoiceMail() the channel runs, until its VMSTATUS
	// (version 2): a restart that loses its end still owes the caller the voicemail callback.
	Voicemail []string `json:"vm,omitempty"`
}

type groupRecord struct {
	Key     string   `json:"k"`
	Members []string `json:"m,omitempty"`
	Queue   bool     `json:"q,omitempty"`
	Dial    string   `json:"d,omitempty"`
}

type targetRecord struct {
	Key     string   `json:"k"`
	Members []string `json:"m,omitempty"`
	Tried   bool     `json:"t,omitempty"`
	Reached bool     `json:"r,omitempty"`
	Message bool     `json:"v,omitempty"`
	VMGap   bool     `json:"vg,omitempty"` // version 2: target.vmGap
	Queue   bool     `json:"q,omitempty"`
	Dial    string   `json:"d,omitempty"`
}

// ErrBadRecord is wrapped by Restore for a kept call that cannot be read back.
var ErrBadRecord = errors.New("bad call record")

// changed marks the call for rewriting once the event that changed it is handled.
func (c *call) changed() {
	if !c.dirty && c.srv != nil {
		c.dirty = true
		c.srv.dirty = append(c.srv.dirty, c)
	}
}

// keepChanged hands the memory the calls of srv that the last event changed.
func (d *Detector) keepChanged(srv *server) {
	if len(srv.dirty) == 0 {
		return
	}
	for _, c := range srv.dirty {
		c.dirty = false
		if d.memory == nil || srv.calls[c.linkedID] != c {
			continue // over: forget has dropped it
		}
		if !d.worthKeeping(c) {
			if c.kept {
				c.kept = false
				d.dropKept(srv, c)
			}
			continue
		}
		rec, err := json.Marshal(d.record(srv, c))
		if err != nil {
			continue // plain strings and bools: cannot fail
		}
		c.kept = true
		mem, ast, lid := d.memory, srv.id, c.linkedID
		d.outbox = append(d.outbox, func() { mem.Keep(ast, lid, rec) })
	}
	clear(srv.dirty)
	srv.dirty = srv.dirty[:0]
}

func (d *Detector) dropKept(srv *server, c *call) {
	mem, ast, lid := d.memory, srv.id, c.linkedID
	d.outbox = append(d.outbox, func() { mem.Drop(ast, lid) })
}

// worthKeeping: a restart can only lose a request for a call that came from a customer.
// (The number is normalized when the call ends, as without a memory.)
func (d *Detector) worthKeeping(c *call) bool {
	return !c.ours && d.looksLikeCustomer(c.origin)
}

func (d *Detector) record(srv *server, c *call) callRecord {
	o := c.origin
	r := callRecord{V: recordVersionV1, Asterisk: srv.id, LinkedID: c.linkedID,
		Origin: originRecord{ID: o.id, Name: o.name, Number: o.callerNum, CallerName: o.callerName,
			Context: o.firstContext, Exten: o.firstExten}}
	for _, ch := range c.members {
		if ch.destroyed {
			continue
		}
		m := memberRecord{ID: ch.id, Name: ch.name}
		if g := ch.group; g != nil {
			m.Group = &groupRecord{Key: g.key, Members: g.members, Queue: g.queue, Dial: g.dial}
		}
		if inVoicemail(ch) {
			m.Voicemail, r.V = ch.mailboxes, recordVersion
		}
		r.Members = append(r.Members, m)
	}
	sort.Slice(r.Members, func(i, j int) bool { return r.Members[i].ID < r.Members[j].ID })
	for _, t := range c.targets {
		r.Targets = append(r.Targets, targetRecord{Key: t.key, Members: t.members, Tried: t.tried,
			Reached: t.reached, Message: t.message, VMGap: t.vmGap, Queue: t.queue, Dial: t.dial})
		if t.vmGap {
			r.V = recordVersion
		}
	}
	for _, cs := range c.consults {
		cr := consultRecord{Transferer: cs.transferer, TransfererExt: cs.transfererExt, Answered: cs.answered,
			Completed: cs.completed}
		for _, h := range cs.halves {
			if !h.destroyed {
				cr.Halves = append(cr.Halves, memberRecord{ID: h.id, Name: h.name})
			}
		}
		if len(cr.Halves) > 0 {
			r.Consults = append(r.Consults, cr)
		}
	}
	return r
}

// Restore follows again a call a previous process kept (Memory), as it was when last written.
// Call it before the first event or resync of that Asterisk: the resync then ends the calls
// that ended while no daemon listened, and the events go on with the others. A call the
// detector already follows is left as it is. A record that does not read back is refused with
// ErrBadRecord and changes nothing.
func (d *Detector) Restore(asteriskID, linkedID string, record []byte) error {
	r, err := decodeRecord(asteriskID, linkedID, record)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	srv := d.server(asteriskID)
	if srv.calls[linkedID] != nil {
		return nil
	}
	now := d.clock.Now()
	if srv.lastEvent.IsZero() {
		srv.lastEvent = now
	}
	srv.seq++
	c := &call{linkedID: linkedID, seq: srv.seq, members: map[string]*chanInfo{}, lastSeen: now,
		srv: srv, kept: true, restored: true}
	for _, m := range r.Members {
		if srv.chans[m.ID] != nil {
			continue // also in a call restored before (it moved): that one has it
		}
		ch := &chanInfo{id: m.ID, call: c}
		d.rename(srv, ch, m.Name)
		if m.Group != nil {
			ch.group = &dialGroup{key: m.Group.Key, members: m.Group.Members, queue: m.Group.Queue, dial: m.Group.Dial}
		}
		ch.mailboxes = m.Voicemail
		if m.ID == r.Origin.ID {
			ch.firstContext, ch.firstExten = r.Origin.Context, r.Origin.Exten
			ch.callerNum, ch.callerName = r.Origin.Number, r.Origin.CallerName
			c.origin = ch
		}
		srv.chans[m.ID] = ch
		c.members[m.ID] = ch
		c.live++
	}
	if c.origin == nil {
		// The customer's channel was gone when the record was written: it is remembered for
		// who the customer is, not as a channel that keeps the call up.
		o := &chanInfo{id: r.Origin.ID, callerNum: r.Origin.Number, callerName: r.Origin.CallerName,
			firstContext: r.Origin.Context, firstExten: r.Origin.Exten, destroyed: true, call: c}
		o.res, o.local = endpointResource(r.Origin.Name)
		o.name = r.Origin.Name
		c.origin = o
		c.members[o.id] = o
	}
	for _, t := range r.Targets {
		c.targets = append(c.targets, &target{key: t.Key, members: t.Members, tried: t.Tried,
			reached: t.Reached, message: t.Message, vmGap: t.VMGap, queue: t.Queue, dial: t.Dial})
	}
	for _, cr := range r.Consults {
		cs := &consultation{transferer: cr.Transferer, transfererExt: cr.TransfererExt, answered: cr.Answered,
			completed: cr.Completed, call: c}
		c.consults = append(c.consults, cs)
		for _, h := range cr.Halves {
			ch := srv.chans[h.ID]
			if ch == nil {
				// A half in a call of its own: it joins one when its next event or the resync
				// shows it, and is forgotten if the resync does not.
				ch = &chanInfo{id: h.ID}
				d.rename(srv, ch, h.Name)
				srv.chans[h.ID] = ch
			}
			cs.attach(ch)
		}
	}
	srv.calls[linkedID] = c
	d.stats.Calls++
	d.stats.Restored++
	return nil
}

// decodeRecord reads a kept call and checks it is whole and is the one its key names.
func decodeRecord(asteriskID, linkedID string, record []byte) (callRecord, error) {
	var r callRecord
	bad := func(format string, args ...any) (callRecord, error) {
		return callRecord{}, fmt.Errorf("restoring call %s of asterisk %s: %w: %s", linkedID, asteriskID, ErrBadRecord,
			fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(record))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return bad("not a call record: %v", err)
	}
	switch {
	case r.V < recordVersionV1 || r.V > recordVersion:
		return bad("format version %d, this daemon reads %d to %d", r.V, recordVersionV1, recordVersion)
	case r.Asterisk != asteriskID || r.LinkedID != linkedID:
		return bad("it describes call %q of asterisk %q", r.LinkedID, r.Asterisk)
	case r.Origin.ID == "":
		return bad("no customer channel")
	case strings.TrimSpace(r.Origin.Number) == "":
		return bad("the customer channel has no caller number")
	case len(r.Members) == 0:
		return bad("no channel up")
	}
	for i, m := range r.Members {
		if m.ID == "" {
			return bad("channel %d has no id", i)
		}
		if m.Group != nil && m.Group.Key == "" {
			return bad("channel %s runs a Dial() without a target", m.ID)
		}
		if slices.Contains(m.Voicemail, "") {
			return bad("channel %s runs a VoiceMail() with an empty mailbox", m.ID)
		}
	}
	for i, t := range r.Targets {
		if t.Key == "" {
			return bad("target %d has no extension", i)
		}
	}
	for i, cr := range r.Consults {
		if cr.Transferer == "" {
			return bad("consultation %d has no transferer", i)
		}
		for _, h := range cr.Halves {
			if h.ID == "" {
				return bad("consultation %d has a channel without an id", i)
			}
		}
	}
	return r, nil
}

// adoptSnapshot, in the first resync after a restore, puts the snapshot's channels that carry
// the linkedid of a restored call into it: they were created while no daemon listened (a
// voicemail's Local pair, a transfer's new leg) and keep the call up as much as the ones the
// record named.
func (d *Detector) adoptSnapshot(srv *server, snap ari.Snapshot, now time.Time) {
	var restored map[string]bool
	for lid, c := range srv.calls {
		if c.restored {
			if restored == nil {
				restored = map[string]bool{}
			}
			restored[lid] = true
			c.restored = false
		}
	}
	if restored == nil {
		return
	}
	present := make(map[string]bool, len(snap.Channels))
	for i := range snap.Channels {
		ch := &snap.Channels[i]
		present[ch.ID] = true
		if snap.Restarted {
			continue
		}
		known := srv.chans[ch.ID]
		if lid := ch.LinkedID(); (restored[lid] && known == nil) || (known != nil && known.call == nil) {
			d.observe(srv, ch, false, now)
		}
	}
	// Consultation halves restored without a call that the PBX no longer has.
	for id, ch := range srv.chans {
		if ch.call == nil && !present[id] {
			delete(srv.chans, id)
			if srv.byName[ch.name] == id {
				delete(srv.byName, ch.name)
			}
		}
	}
}
