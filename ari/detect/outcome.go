package detect

import (
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// target is one destination the customer was sent to.
type target struct {
	key     string
	members []string
	tried   bool
	reached bool
	message bool
	// vmGap: the customer was in this mailbox's VoiceMail() when the detector stopped hearing
	// the call, and its end was never seen (voicemailLost).
	vmGap bool
	queue bool   // an Asterisk Queue(): key is its name
	dial  string // the Dial() destinations that rang it, for routing
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
	c.changed()
	return t
}

func (c *call) tried(key string, members []string) *target {
	t := c.target(key, members)
	if !t.tried {
		t.tried = true
		c.changed()
	}
	return t
}

type customerInfo struct {
	number, name, channel string
	did, context          string
}

// reached marks ext, and every ring group it belongs to, as reached, and reports each newly
// reached one as the customer's Reach: it may resolve a promise they are owed.
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
	if len(newly) > 0 {
		c.changed()
	}
	if c.ours {
		return
	}
	cust := d.customerOf(c)
	if cust == nil {
		return
	}
	for _, k := range newly {
		d.emitReach(Reach{Number: cust.number, Target: k, AsteriskID: srv.id, LinkedID: c.linkedID, At: at.UTC()})
	}
}

// customerOf returns the call's customer, or nil when the call did not come from one.
func (d *Detector) customerOf(c *call) *customerInfo {
	o := c.origin
	if !d.looksLikeCustomer(o) {
		return nil
	}
	num := strings.TrimSpace(o.callerNum)
	if o.e164Of != num || (o.e164 == "" && o.e164Err == nil) {
		o.e164, o.e164Err = normalizeNumber(num, d.region)
		o.e164Of = num
		if o.e164Err != nil {
			d.log.Warn("customer call with a caller number that cannot be called back",
				zap.String("number", d.mask(num)), zap.String("linkedid", c.linkedID), zap.Error(o.e164Err))
		}
	}
	if o.e164Err != nil {
		return nil
	}
	return &customerInfo{number: o.e164, name: o.callerName, channel: o.id, did: o.firstExten, context: o.firstContext}
}

// looksLikeCustomer reports whether o, a call's origin, is a customer calling in, short of
// checking that the number can be called back.
func (d *Detector) looksLikeCustomer(o *chanInfo) bool {
	if o == nil || o.local || o.ours || o.originated {
		return false
	}
	num := strings.TrimSpace(o.callerNum)
	if num == "" || d.internal.MatchString(num) {
		return false
	}
	return d.inbound[o.firstContext] || d.customer.MatchString(num)
}

// VoicemailGapNote is the note of a promise made from a voicemail whose end was not seen
// (Request.VoicemailGap).
const VoicemailGapNote = "made from a voicemail interrupted by an ARI events gap (socket drop or restart): " +
	"whether a message was left is not known"

// finalize ends a call: it forgets the call and emits what it deserves. The kept record is
// dropped after the requests are emitted, so whoever stores them sees a request before the
// drop of its call and can hold the drop until the request is stored: a daemon killed in
// between leaves the call in Redis, and the next one makes the promise from it.
func (d *Detector) finalize(srv *server, c *call, at time.Time) {
	if c.kept {
		c.kept = false
		defer d.dropKept(srv, c)
	}
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
		gap := false
		switch {
		case t.message:
			reason = queue.ReasonVoicemail
		case t.vmGap:
			reason, gap = queue.ReasonVoicemail, true
		case t.tried && !t.reached:
			reason = queue.ReasonUnansweredTransfer
		default:
			continue
		}
		r := Request{AsteriskID: srv.id, LinkedID: c.linkedID, Number: cust.number,
			Name: cust.name, Reason: reason, Target: t.key, Channel: cust.channel, At: at.UTC(),
			DialString: t.dial, DID: cust.did, Context: cust.context}
		if t.queue {
			r.AsteriskQueue = t.key
		}
		if gap {
			r.VoicemailGap = true
			d.stats.VoicemailGaps++
			d.log.Warn("the caller was in voicemail when the events stopped and is gone: whether a message was left "+
				"is not known, so the voicemail callback is promised",
				zap.String("number", d.mask(r.Number)), zap.String("mailbox", t.key),
				zap.String("asterisk_id", srv.id), zap.String("linkedid", c.linkedID))
		}
		d.emitRequest(r)
	}
}
