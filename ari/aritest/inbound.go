package aritest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/callbackd/callbackd/ari"
)

// InboundCall is a customer calling in over the trunk and a small dialplan run for it.
type InboundCall struct {
	// From is the caller's number (E.164 as the provider sends it), Name the caller name.
	From, Name string
	// To is the dialled number: the exten in Context. Default "s".
	To string
	// Context defaults to "from-trunk"; Endpoint to "PJSIP/trunk".
	Context, Endpoint string
	// Steps run in order, like dialplan priorities. When they run out the channel is hung
	// up the way Asterisk does when the dialplan ends.
	Steps []Step
}

// Step is one dialplan step of an InboundCall; build it with the functions below.
type Step struct {
	kind     stepKind
	app      string
	data     string
	target   string
	d        time.Duration
	message  time.Duration
	exten    string
	context  string
	greeting time.Duration
}

type stepKind int

const (
	stepApp stepKind = iota
	stepSet
	stepDial
	stepWait
	stepPlayback
	stepVoiceMail
	stepHangup
	stepCallerHangsUp
	stepBlindTransfer
)

// App runs a dialplan application that has no effect here but its ChannelDialplan event
// (NoOp, GotoIf, ...).
func App(name, data string) Step { return Step{kind: stepApp, app: name, data: data} }

// NoOp is App("NoOp", text).
func NoOp(text string) Step { return App("NoOp", text) }

// Set runs Set(name=value): ChannelDialplan and ChannelVarset.
func Set(name, value string) Step { return Step{kind: stepSet, target: name, data: value} }

// Dial runs Dial(endpoint,seconds[,opts]) and rings endpoint as its Behavior says. If it
// answers, the caller is bridged to it and the following steps (Talk, BlindTransfer) happen
// in the bridge.
func Dial(endpoint string, timeout time.Duration, opts string) Step {
	data := fmt.Sprintf("%s,%d", endpoint, int(timeout/time.Second))
	if opts != "" {
		data += "," + opts
	}
	return Step{kind: stepDial, target: endpoint, d: timeout, data: data}
}

// Wait runs Wait(d).
func Wait(d time.Duration) Step { return Step{kind: stepWait, d: d} }

// Playback runs Playback(media), answering the channel first.
func Playback(media string) Step { return Step{kind: stepPlayback, data: media} }

// DefaultGreeting is how long app_voicemail's default unavailable greeting plays (≈ 13 s in
// the recordings).
const DefaultGreeting = 13 * time.Second

// VoiceMail runs VoiceMail(mailbox,u): answers, plays the greeting, records a message of
// length message and then the caller hangs up: VM_MESSAGEFILE and VMSTATUS=SUCCESS arrive
// after the caller's first hang-up request, as recorded.
func VoiceMail(mailbox string, message time.Duration) Step {
	return Step{kind: stepVoiceMail, target: mailbox, data: mailbox + ",u", message: message, greeting: DefaultGreeting}
}

// VoiceMailHangupInGreeting runs VoiceMail(mailbox,u) and the caller hangs up after d,
// during the greeting: VMSTATUS=FAILED and no VM_MESSAGEFILE.
func VoiceMailHangupInGreeting(mailbox string, d time.Duration) Step {
	return Step{kind: stepVoiceMail, target: mailbox, data: mailbox + ",u", greeting: d}
}

// Hangup runs the dialplan's Hangup().
func Hangup() Step { return Step{kind: stepHangup} }

// CallerHangsUp: after d the caller hangs up, whatever is going on (an application, or a
// conversation in a bridge). It ends the script.
func CallerHangsUp(d time.Duration) Step { return Step{kind: stepCallerHangsUp, d: d} }

// Talk is CallerHangsUp for a caller bridged to the party it dialled: they talk d, then the
// caller hangs up.
func Talk(d time.Duration) Step { return CallerHangsUp(d) }

// BlindTransfer: after d the party the caller is bridged to makes a SIP REFER blind transfer
// to exten@context. The caller continues with the following steps (what that context runs).
func BlindTransfer(d time.Duration, exten, context string) Step {
	return Step{kind: stepBlindTransfer, d: d, exten: exten, context: context}
}

// Call is a running InboundCall.
type Call struct {
	// Channel is the customer's channel as first created.
	Channel ari.Channel
	done    chan struct{}
}

// Done is closed once the script has ended and every channel of the call is gone.
func (c *Call) Done() <-chan struct{} { return c.done }

// Wait blocks until the call has ended or ctx is done.
func (c *Call) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for call %s to end: %w", c.Channel.ID, ctx.Err())
	}
}

type callRun struct {
	s     *Server
	ch    *channel
	peer  *channel // the answered party of the last Dial, while bridged
	epoch int
}

// Inbound starts a scripted inbound call and returns at once; the call runs on the server's
// clock.
func (s *Server) Inbound(in InboundCall) *Call {
	if in.Context == "" {
		in.Context = "from-trunk"
	}
	if in.Endpoint == "" {
		in.Endpoint = "PJSIP/trunk"
	}
	if in.To == "" {
		in.To = "s"
	}
	s.mu.Lock()
	ch := s.newChannelLocked(ChannelSpec{Endpoint: in.Endpoint, CallerName: in.Name, CallerNumber: in.From,
		Context: in.Context, Exten: in.To, State: "Ring"})
	ch.snap.Dialplan.Priority = 0 // the first step makes it 1
	s.chanEventLocked(ari.EventChannelCreated, ch, nil)
	s.varsetLocked(ch, "SIPDOMAIN", "127.0.0.1")
	c := &Call{Channel: ch.snapshot(), done: make(chan struct{})}
	c.Channel.Dialplan.Priority = 1
	run := &callRun{s: s, ch: ch, epoch: s.epoch}
	started := s.goScriptLocked(func() {
		defer close(c.done)
		run.run(in.Steps)
	})
	s.mu.Unlock()
	if !started {
		close(c.done) // a closed server runs no script; nobody may wait forever for it
	}
	return c
}

func (r *callRun) run(steps []Step) {
	s := r.s
	for _, st := range steps {
		if !r.step(st) {
			return
		}
	}
	// The dialplan ran out: Asterisk hangs the channel up.
	s.mu.Lock()
	defer s.mu.Unlock()
	r.dialplanEndLocked()
}

// alive reports whether the script may go on; call with s.mu held.
func (r *callRun) aliveLocked() bool {
	_, ok := r.s.channels[r.ch.snap.ID]
	return ok && r.s.epoch == r.epoch && !r.s.closed
}

func (r *callRun) sleep(d time.Duration) bool {
	return r.s.sleep(r.epoch, d, r.ch.gone) == nil
}

func (r *callRun) step(st Step) bool {
	s := r.s
	switch st.kind {
	case stepWait:
		if !r.locked(func() { s.dialplanLocked(r.ch, "Wait", fmt.Sprint(int(st.d/time.Second))) }) {
			return false
		}
		return r.sleep(st.d)
	case stepCallerHangsUp:
		if !r.sleep(st.d) {
			return false
		}
		r.locked(func() { r.callerHangupLocked(nil) })
		return false
	case stepPlayback:
		if !r.locked(func() {
			s.dialplanLocked(r.ch, "Playback", st.data)
			s.setStateLocked(r.ch, "Up")
		}) {
			return false
		}
		return r.sleep(mediaDuration("sound:" + st.data))
	case stepVoiceMail:
		return r.voicemail(st)
	case stepDial:
		return r.dial(st)
	case stepBlindTransfer:
		if !r.sleep(st.d) {
			return false
		}
		return r.locked(func() { r.blindTransferLocked(st) })
	}
	return r.locked(func() {
		switch st.kind {
		case stepApp:
			s.dialplanLocked(r.ch, st.app, st.data)
		case stepSet:
			s.dialplanLocked(r.ch, "Set", st.target+"="+st.data)
			s.varsetLocked(r.ch, st.target, st.data)
		case stepHangup:
			s.dialplanLocked(r.ch, "Hangup", "")
			r.dialplanEndLocked()
		}
	}) && st.kind != stepHangup
}

// locked runs fn under the server lock if the call is still alive.
func (r *callRun) locked(fn func()) bool {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if !r.aliveLocked() {
		return false
	}
	fn()
	return r.aliveLocked()
}

// dialplanEndLocked hangs the caller up from the dialplan side (Hangup() or the end of the
// dialplan). A failed Dial's cause sticks to the caller (trace 05: 3 / 404).
func (r *callRun) dialplanEndLocked() {
	s := r.s
	if !r.aliveLocked() {
		return
	}
	cause, tech := 16, (*int)(nil)
	if fd := r.ch.stickyCause; fd != nil {
		cause, tech = fd.cause, intp(fd.tech)
	}
	peer := r.peer
	s.destroyLocked(r.ch, []hangupRequest{{cause: intp(16), soft: true}}, cause, tech, nil)
	r.endPeerLocked(peer)
}

func (r *callRun) endPeerLocked(peer *channel) {
	if peer == nil {
		return
	}
	if _, ok := r.s.channels[peer.snap.ID]; ok {
		r.s.destroyLocked(peer, nil, 16, nil, nil)
	}
	r.peer = nil
}

// callerHangupLocked is the caller's BYE. Causes as recorded (README §1–§2): in an
// application and never bridged: a first request without cause and destroyed with cause 0;
// once bridged: 16 and 16. between runs after the first request (voicemail's late varsets).
func (r *callRun) callerHangupLocked(between func()) {
	s := r.s
	ch := r.ch
	first := hangupRequest{}
	destroyCause := 0
	if ch.bridged {
		first.cause = intp(16)
		destroyCause = 16
	}
	s.chanEventLocked(ari.EventChannelHangupRequest, ch, hangupFields(first))
	peer := r.peer
	if ch.bridge != "" {
		s.leaveBridgeLocked(ch)
		s.varsetLocked(ch, "DIALSTATUS", "ANSWER")
	}
	if between != nil {
		between()
	}
	s.destroyLocked(ch, []hangupRequest{{cause: intp(16), soft: true}}, destroyCause, nil, nil)
	r.endPeerLocked(peer)
}

func hangupFields(h hangupRequest) fields {
	f := fields{}
	if h.cause != nil {
		f["cause"] = *h.cause
	}
	if h.soft {
		f["soft"] = true
	}
	return f
}

func (r *callRun) voicemail(st Step) bool {
	s := r.s
	if !r.locked(func() {
		s.dialplanLocked(r.ch, "VoiceMail", st.data)
		s.setStateLocked(r.ch, "Up")
	}) {
		return false
	}
	if !r.sleep(st.greeting) {
		return false
	}
	if st.message <= 0 {
		r.locked(func() {
			r.callerHangupLocked(func() { s.varsetLocked(r.ch, "VMSTATUS", "FAILED") })
		})
		return false
	}
	if !r.sleep(st.message) {
		return false
	}
	r.locked(func() {
		box, ctx, _ := strings.Cut(st.target, "@")
		if ctx == "" {
			ctx = "default"
		}
		n := s.vmCount[box+"@"+ctx]
		s.vmCount[box+"@"+ctx] = n + 1
		file := fmt.Sprintf("/var/spool/asterisk/voicemail/%s/%s/INBOX/msg%04d", ctx, box, n)
		r.callerHangupLocked(func() {
			s.varsetLocked(r.ch, "VM_MESSAGEFILE", file)
			s.varsetLocked(r.ch, "VMSTATUS", "SUCCESS")
			s.deviceStateLocked("MWI:"+box+"@"+ctx, "INUSE")
		})
	})
	return false
}

// dial runs a dialplan Dial. Unlike ARI-dialled legs, a dialplan Dial gets its final Dial
// event (NOANSWER, BUSY, ANSWER); an unregistered target gets none at all.
func (r *callRun) dial(st Step) bool {
	s := r.s
	var peer *channel
	var b Behavior
	ok := r.locked(func() {
		ch := r.ch
		s.dialplanLocked(ch, "Dial", st.data)
		s.varsetLocked(ch, "DIALSTATUS", "")
		var avail bool
		b, avail = s.behaviorLocked(st.target)
		if !avail {
			s.varsetLocked(ch, "DIALSTATUS", "CHANUNAVAIL")
			ch.stickyCause = &failedDial{cause: 3, tech: 404}
			return
		}
		peer = s.newChannelLocked(ChannelSpec{Endpoint: st.target, CallerName: b.CallerName, CallerNumber: b.CallerNumber,
			Context: "from-sip", Exten: ch.snap.Dialplan.Exten, State: "Down", LinkedID: ch.snap.ChannelVars[ari.LinkedIDVar]})
		peer.snap.Connected = ch.snap.Caller
		peer.snap.Dialplan.AppName, peer.snap.Dialplan.AppData = "AppDial", "(Outgoing Line)"
		s.chanEventLocked(ari.EventChannelCreated, peer, nil)
		for k, v := range ch.vars {
			if strings.HasPrefix(k, "__") {
				s.varsetLocked(peer, k, v)
			}
		}
		s.chanEventLocked(ari.EventChannelDialplan, peer, fields{"dialplan_app": "AppDial", "dialplan_app_data": "(Outgoing Line)"})
		s.emitLocked(ari.EventDial, fields{"dialstatus": "", "forward": "", "dialstring": resource(st.target),
			"caller": ch.snapshot(), "peer": peer.snapshot()}, union(s.chanTargetsLocked(ch), s.chanTargetsLocked(peer)))
		ch.snap.Connected = peer.snap.Caller
		s.chanEventLocked(ari.EventChannelConnectedLine, ch, nil)
		s.setStateLocked(peer, "Ringing")
		r.dialEventLocked(peer, "RINGING")
	})
	if !ok || peer == nil {
		return ok
	}
	wait, status := st.d, "NOANSWER"
	switch {
	case b.Answer && b.AnswerAfter < st.d:
		wait, status = b.AnswerAfter, "ANSWER"
	case b.Busy && b.BusyAfter < st.d:
		wait, status = b.BusyAfter, "BUSY"
	}
	if err := s.sleep(r.epoch, wait, r.ch.gone); err != nil {
		if err == errGone {
			// The caller gave up while it rang: CANCEL.
			s.mu.Lock()
			if _, alive := s.channels[peer.snap.ID]; alive {
				r.dialEventLocked(peer, "CANCEL")
				s.destroyLocked(peer, nil, 0, nil, nil)
			}
			s.mu.Unlock()
		}
		return false
	}
	return r.locked(func() {
		ch := r.ch
		switch status {
		case "ANSWER":
			s.setStateLocked(peer, "Up")
			s.varsetLocked(ch, "DIALSTATUS", "ANSWER")
			r.dialEventLocked(peer, "ANSWER")
			s.setStateLocked(ch, "Up")
			br := s.newBridgeLocked("", "", "basic", "")
			s.chanEventLocked(ari.EventChannelDialplan, peer, fields{"dialplan_app": "AppDial", "dialplan_app_data": "(Outgoing Line)"})
			s.enterBridgeLocked(br, peer)
			s.enterBridgeLocked(br, ch)
			r.peer = peer
		case "BUSY":
			r.dialEventLocked(peer, "BUSY")
			s.varsetLocked(ch, "DIALSTATUS", "BUSY")
			s.destroyLocked(peer, nil, 17, intp(486), nil)
			ch.stickyCause = &failedDial{cause: 17, tech: 486}
		default:
			r.dialEventLocked(peer, "NOANSWER")
			s.varsetLocked(ch, "DIALSTATUS", "NOANSWER")
			// Trace 01/02/04: the dialled phone that never answered goes with cause 0.
			s.destroyLocked(peer, nil, 0, nil, nil)
		}
	})
}

func (r *callRun) dialEventLocked(peer *channel, status string) {
	s := r.s
	s.emitLocked(ari.EventDial, fields{"dialstatus": status, "forward": "", "dialstring": resource(peer.endpoint),
		"caller": r.ch.snapshot(), "peer": peer.snapshot()}, union(s.chanTargetsLocked(r.ch), s.chanTargetsLocked(peer)))
}

// blindTransferLocked is the bridged party's SIP REFER to exten@context, event by event as in
// trace 04: BLINDTRANSFER on both legs, BridgeBlindTransfer Success (is_external), the
// transitional ChannelDialplan with the old app, both leave the bridge, the late
// DIALSTATUS=ANSWER, and the transferer's leg is hung up.
func (r *callRun) blindTransferLocked(st Step) {
	s := r.s
	ch, op := r.ch, r.peer
	if op == nil || ch.bridge == "" {
		s.logf("aritest: BlindTransfer step while %s is not bridged: ignored", ch.snap.Name)
		return
	}
	br := s.bridges[ch.bridge]
	s.chanEventLocked(ari.EventChannelUnhold, op, nil)
	s.varsetLocked(ch, "BLINDTRANSFER", op.snap.Name)
	s.varsetLocked(op, "BLINDTRANSFER", ch.snap.Name)
	s.emitLocked(ari.EventBridgeBlindTransfer, fields{
		"channel": op.snapshot(), "transferee": ch.snapshot(), "exten": st.exten, "context": st.context,
		"result": "Success", "is_external": true, "bridge": br.snapshot(),
	}, s.bridgeTargetsLocked(br))
	ch.snap.Dialplan.Context, ch.snap.Dialplan.Exten, ch.snap.Dialplan.Priority = st.context, st.exten, 1
	s.chanEventLocked(ari.EventChannelDialplan, ch, fields{"dialplan_app": ch.snap.Dialplan.AppName, "dialplan_app_data": ch.snap.Dialplan.AppData})
	s.leaveBridgeLocked(op)
	s.leaveBridgeLocked(ch)
	s.varsetLocked(ch, "DIALSTATUS", "ANSWER")
	s.destroyLocked(op, nil, 16, nil, nil)
	r.peer = nil
}
