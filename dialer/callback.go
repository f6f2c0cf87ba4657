package dialer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// REST is the part of one Asterisk's REST API that the dialer uses.
type REST interface {
	Directory
	// Channels lists the Asterisk's channels: a leg of an earlier claim of the promise may
	// still be up (earlierClaimUp).
	Channels(ctx context.Context) ([]ari.Channel, error)
	// Channel reads one leg back when a wait for its events ran out (readBack): a 404
	// (ari.StatusOf) means Asterisk no longer has it.
	Channel(ctx context.Context, id string) (ari.Channel, error)
	Originate(ctx context.Context, req ari.OriginateRequest) (ari.Channel, error)
	CreateChannel(ctx context.Context, req ari.CreateRequest) (ari.Channel, error)
	Dial(ctx context.Context, id, caller string, timeout time.Duration) error
	Hangup(ctx context.Context, id, reason string) error
	Play(ctx context.Context, channelID, playbackID string, media []string) (ari.Playback, error)
	// Playback reads a playback back after a socket gap: a 404 (ari.StatusOf) means it ended.
	Playback(ctx context.Context, id string) (ari.Playback, error)
	CreateBridge(ctx context.Context, id, typ string) (ari.Bridge, error)
	AddChannel(ctx context.Context, bridgeID, channelID string) error
	DestroyBridge(ctx context.Context, id string) error
}

// PromiseLease is what a callback does with the promise it claimed: keep its lease, record
// the connect, and settle it.
type PromiseLease interface {
	Extend(ctx context.Context, ref queue.Ref, token int64, d time.Duration) (queue.Job, error)
	MarkDialled(ctx context.Context, ref queue.Ref, token int64) (queue.Job, error)
	MarkConnected(ctx context.Context, ref queue.Ref, token int64, at time.Time) (queue.Job, error)
	// MarkAdopted records a conversation whose claim was taken back before its connect was
	// written (see adoptOwn).
	MarkAdopted(ctx context.Context, ref queue.Ref, token int64, at time.Time, worker string, lease time.Duration) (queue.Job, error)
	Complete(ctx context.Context, ref queue.Ref, token int64, outcome queue.State, detail string) (queue.Job, error)
	Retry(ctx context.Context, ref queue.Ref, token int64, notBefore time.Time, detail string) (queue.Job, error)
	Release(ctx context.Context, ref queue.Ref, token int64, notBefore time.Time, detail string) (queue.Job, error)
	Get(ctx context.Context, ref queue.Ref) (queue.Job, error)
	// Emit tells the event stream's readers a step no transition records (the agent rung).
	Emit(ctx context.Context, ref queue.Ref, t queue.EventType, data map[string]string) error
}

// channelRouter sends a callback the events of the channels it creates (Control).
type channelRouter interface {
	Watch(asterisk, id string, in *inbox)
	Created(id string)
	Forget(ids ...string)
}

// deviceRecorder hears a device state read just before ringing (the Pool): deviceRead is
// called before the read, and what it returns with what was read.
type deviceRecorder interface {
	deviceRead(agentID string) (commit func(state string))
}

// callEnv is what every callback shares: how calls are placed and where their results go.
type callEnv struct {
	calls   CallSettings
	store   PromiseLease
	router  channelRouter
	devices deviceRecorder
	metrics *Metrics
	clk     clock.Clock
	report  func(Progress)
	// limiter counts callbacks against limits (nil: none).
	limiter Limiter
	limits  RateLimits
}

// callback is one agent-first callback: one agent, one claimed promise, from the claim to
// the settled verdict. It owns its channels, its bridge and the promise's lease.
type callback struct {
	env   callEnv
	pbx   PBX
	pbxUp bool // the agent's Asterisk is connected
	agent AgentView
	job   queue.Job
	q     QueuePolicy
	in    *inbox
	log   *zap.Logger

	agentCh, custCh, bridge string
	agentUp, custDialled    bool
	custCreated             bool // the customer leg may exist at Asterisk (even if its create failed)
	agentGone, custGone     bool
	custCause, custTech     int
	custDigits              string // every key the customer pressed, even during the greeting
	connectedAt             time.Time
	// custResyncs counts the resyncs that found the customer leg still up: each was a socket
	// gap in which a key press may have been lost.
	custResyncs int
	// heardAt is when another daemon heard this claim's customer answer (queue.Lease.Heard),
	// read when a wait of this one's ran out in silence (witnessed); zero otherwise.
	heardAt time.Time

	// calls ends when the daemon's grace period is over; held store writes give up then.
	calls context.Context
	// talking is set once the customer is connected to the agent: from then on a lease taken
	// back (Redis was down longer than the lease) does not cut the conversation.
	talking atomic.Bool
	// adopted is the fencing token of the claim this callback took back through the adopted
	// path (adoptOwn) after its own lease was lost to a Redis outage; 0: none.
	adopted atomic.Int64
	// connect is the connect's store write, nil until the customer is connected.
	connect *connectWrite
}

// keep keeps the claimed promise: it renews the lease while the call runs, places the call
// and settles the verdict. calls ends when the daemon's grace period is over.
func (cb *callback) keep(calls context.Context) verdict {
	cb.calls = calls
	ctx, cancel := context.WithCancelCause(calls)
	renewed := make(chan struct{})
	go func() { defer close(renewed); cb.keepLease(ctx, cancel) }()
	var v verdict
	switch {
	case !cb.env.calls.Allowed(cb.job.Number):
		cb.log.Error("refusing to dial a number that dialer.allow does not allow; promise failed")
		v = verdict{kind: failed, detail: "number not allowed by dialer.allow"}
	case !cb.pbxUp:
		v = verdict{kind: release, cool: true, detail: "asterisk of agent " + cb.agent.ID + " not connected"}
	case !cb.withinLimits(ctx, &v):
	default:
		v = cb.run(ctx)
		if errors.Is(context.Cause(ctx), errTakenAway) {
			v.kind = taken
		}
	}
	cancel(nil)
	<-renewed
	cb.settle(v)
	return v
}

// run drives the call flow of design §Dispatch until it has a verdict. It never settles
// the promise itself; ctx ends when the daemon's grace period is over or the promise is
// taken away.
func (cb *callback) run(ctx context.Context) verdict {
	rest := cb.pbx.REST
	cb.agentCh, cb.custCh, cb.bridge = cb.ids()

	// Re-check the device: the pool's view may be a moment old.
	seen := cb.env.devices.deviceRead(cb.agent.ID)
	ds, err := rest.DeviceState(ctx, cb.agent.Endpoint)
	switch {
	case err != nil:
		cb.log.Warn("re-checking the agent's device failed; ringing on the last known state", zap.Error(err))
	case ds.State != deviceNotInUse:
		seen(ds.State)
		return verdict{kind: release, detail: "agent " + cb.agent.ID + " is " + ds.State}
	}

	if v, up := cb.earlierClaimUp(ctx, verdict{}); up {
		return v
	}

	cb.env.router.Watch(cb.pbx.ID, cb.agentCh, cb.in)
	cb.env.router.Watch(cb.pbx.ID, cb.custCh, cb.in)
	defer cb.env.router.Forget(cb.agentCh, cb.custCh)

	cb.progress(StepAgentRung, "")
	_, err = rest.Originate(ctx, ari.OriginateRequest{
		Endpoint:  cb.agent.Endpoint,
		App:       cb.pbx.ControlApp,
		AppArgs:   "agent," + cb.job.ID,
		CallerID:  callerID(cb.job.Name, cb.job.Number),
		Timeout:   int(seconds(cb.env.calls.AgentRingTimeout)),
		ChannelID: cb.agentCh,
	})
	if err != nil {
		// The request may have reached Asterisk and only its reply been lost; the id is ours,
		// so hang it up whatever happened (a 404 is fine).
		cb.hangup(cb.agentCh)
		if ctx.Err() != nil {
			return verdict{kind: release, detail: "stopped before the agent was rung"}
		}
		cb.log.Warn("agent could not be rung", zap.String("agent", cb.agent.ID), zap.Error(err))
		return verdict{kind: release, agentResult: ResultUnavailable, detail: "agent " + cb.agent.ID + " unavailable: " + err.Error()}
	}
	cb.env.router.Created(cb.agentCh)
	cb.emit(ctx, queue.EventAgentRung, map[string]string{"agent": cb.agent.ID})

	// Wait for the agent to answer (StasisStart) or give up.
	agentRinging := func(ev *ari.Event) bool {
		if ev.Channel != nil && ev.Channel.ID == cb.agentCh &&
			(ev.Type == ari.EventStasisStart || ev.Type == EventSnapshot && ev.Channel.State == "Up") {
			cb.agentUp = true
		}
		return cb.agentUp || cb.agentGone
	}
	err = cb.await(ctx, cb.env.calls.AgentRingTimeout+10*time.Second, agentRinging)
	// Asterisk ends the agent's ringing after the ring timeout, so a wait that outlasts it has
	// heard nothing of the leg: its events go to another client holding the control app. An
	// agent who answered into that silence did answer: the promise goes back for a daemon that
	// hears its calls (this one claims nothing until it has its apps back), and the agent is
	// not held back as after a no-answer.
	if !cb.agentUp && !cb.agentGone && ctx.Err() == nil && cb.readBack(ctx, agentRinging) && cb.agentUp {
		cb.hangup(cb.agentCh)
		return verdict{kind: release, detail: "agent " + cb.agent.ID + " answered, but this daemon heard nothing of the call " +
			"(another ARI client holding its control app)"}
	}
	if !cb.agentUp {
		cb.hangup(cb.agentCh)
		detail := "agent " + cb.agent.ID + " did not answer"
		if err != nil && ctx.Err() != nil {
			return verdict{kind: release, detail: "stopped while the agent rang"}
		}
		return verdict{kind: release, agentResult: ResultNoAnswer, detail: detail}
	}
	v := cb.talkToAgent(ctx)
	cb.hangup(cb.custCh)
	cb.hangup(cb.agentCh)
	cb.destroyBridge()
	return v
}

// talkToAgent runs everything after the agent answered: bridge, whisper, the customer leg.
func (cb *callback) talkToAgent(ctx context.Context) verdict {
	rest := cb.pbx.REST
	calls := cb.env.calls
	v := verdict{agentResult: ResultAnswered}
	// At shutdown the promise goes back. Once the customer's phone has rung, that was an
	// attempt: a daemon restarting in a loop must not ring anyone more than max_attempts.
	stopped := func(what string) verdict {
		v.kind, v.detail = release, "stopped while "+what
		if cb.custDialled {
			v.kind, v.custResult, v.now = retry, ResultFailed, true
		}
		return v
	}
	agentLeft := func(what string) verdict {
		v.detail = "agent " + cb.agent.ID + " hung up " + what
		v.kind, v.agentResult = release, ResultHungUp
		if cb.custDialled {
			v.kind, v.custResult = retry, ResultFailed
		}
		return v
	}

	if _, err := rest.CreateBridge(ctx, cb.bridge, "mixing"); err != nil {
		v.kind, v.detail, v.cool = release, "creating the bridge failed: "+err.Error(), true
		return v
	}
	if err := rest.AddChannel(ctx, cb.bridge, cb.agentCh); err != nil {
		v.kind, v.detail, v.cool = release, "bridging the agent failed: "+err.Error(), true
		return v
	}

	// Whisper who and why, before the customer can hear anything.
	if media := whisperFor(calls.Whisper, cb.job, cb.q.Hours); len(media) > 0 {
		cb.progress(StepWhisper, strings.Join(media, ","))
		if err := cb.play(ctx, cb.agentCh, "whisper", media); err != nil {
			if cb.agentGone {
				return agentLeft("during the whisper")
			}
			if ctx.Err() != nil {
				return stopped("whispering")
			}
			cb.log.Warn("whisper failed; dialling the customer anyway", zap.Error(err))
		}
	}
	if cb.agentGone {
		return agentLeft("during the whisper")
	}

	// Ringing the agent and the whisper take a while: calling hours may have closed since the
	// claim, and no customer is ever rung outside them.
	if !cb.q.Hours.Open(cb.env.clk.Now()) {
		_ = cb.play(ctx, cb.agentCh, "notice", []string{noticeCallingHoursClosed})
		v.kind, v.detail = release, "calling hours closed before the customer was dialled"
		return v
	}

	// The allow-list once more, just before the dial string is built from the number: only a
	// number that is canonical E.164 and allowed ever reaches it.
	if !calls.Allowed(cb.job.Number) {
		cb.log.Error("refusing to dial a number that dialer.allow does not allow; promise failed")
		v.kind, v.detail = failed, "number not allowed by dialer.allow"
		return v
	}

	// Again just before the customer's phone can ring: an earlier claim's callback that lives
	// on in a daemon cut off from Redis may have made its customer leg since.
	if v, up := cb.earlierClaimUp(ctx, v); up {
		return v
	}

	// Written before the customer leg exists: if this daemon dies from here on, the lease
	// expiry counts one attempt (the customer's phone may have rung); before it, it gives the
	// promise back without one. Without the record the customer is not rung, or a crash loop
	// could ring them more than max_attempts times.
	if _, err := cb.env.store.MarkDialled(ctx, cb.job.Ref(), cb.job.Lease.Token); err != nil {
		switch {
		case takenAway(err):
			return verdict{kind: taken, agentResult: ResultAnswered, detail: err.Error()}
		case ctx.Err() != nil:
			return stopped("recording the customer dial")
		}
		v.kind, v.detail, v.cool = release, "recording the customer dial failed: "+err.Error(), true
		return v
	}

	// The customer leg: created with the company's caller id, bridged before dialling so the
	// agent hears ringback, then dialled.
	cid := calls.CallerID
	cb.custCreated = true
	_, err := rest.CreateChannel(ctx, ari.CreateRequest{
		ChannelCreateRequest: ari.ChannelCreateRequest{
			Endpoint:  calls.DialString(cb.job.Number),
			App:       cb.pbx.ControlApp,
			AppArgs:   "customer," + cb.job.ID,
			ChannelID: cb.custCh,
		},
		Variables: map[string]string{
			"CALLERID(num)": cid.Number, "CALLERID(name)": cid.Name,
			"CONNECTEDLINE(num)": cid.Number, "CONNECTEDLINE(name)": cid.Name,
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return stopped("creating the customer leg")
		}
		return cb.customerFailed(ctx, v, ResultUnavailable, "creating the customer channel failed: "+err.Error())
	}
	cb.env.router.Created(cb.custCh)
	if err := rest.AddChannel(ctx, cb.bridge, cb.custCh); err != nil {
		// Not the customer's doing, and their phone has not rung: no attempt is used.
		v.kind, v.detail, v.cool = release, "bridging the customer leg failed: "+err.Error(), true
		return v
	}
	cb.progress(StepCustomerDialled, "")
	cb.custDialled = true
	// No caller: Asterisk would copy the caller's id — the agent leg shows the customer's own
	// number — over the connected line set above, and the customer would see themselves.
	if err := rest.Dial(ctx, cb.custCh, "", calls.CustomerRingTimeout); err != nil {
		if ctx.Err() != nil {
			return stopped("dialling the customer")
		}
		return cb.customerFailed(ctx, v, ResultUnavailable, "dialling the customer failed: "+err.Error())
	}
	custUp := false
	ringing := func(ev *ari.Event) bool {
		switch {
		case (ev.Type == ari.EventChannelStateChange || ev.Type == EventSnapshot) && ev.Channel != nil &&
			ev.Channel.ID == cb.custCh && ev.Channel.State == "Up":
			custUp = true
		case ev.Type == ari.EventDial && ev.Peer != nil && ev.Peer.ID == cb.custCh && ev.DialStatus == "ANSWER":
			custUp = true
		}
		return custUp || cb.custGone || cb.agentGone
	}
	err = cb.await(ctx, calls.CustomerRingTimeout+15*time.Second, ringing)
	// Asterisk ends the ringing itself after the ring timeout, so a wait that outlasts it with no
	// end of the leg has heard nothing: the events went elsewhere (another client holding the
	// control app). What another daemon heard, or the legs as Asterisk has them, say whether the
	// customer answered, before they are hung up on as "did not answer".
	if !custUp && !cb.custGone && !cb.agentGone && ctx.Err() == nil {
		if cb.witnessed(ctx) {
			custUp = true
		} else {
			cb.readBack(ctx, ringing)
		}
	}
	switch {
	case cb.agentGone && !custUp:
		return agentLeft("while the customer rang")
	case cb.custGone:
		return cb.customerFailed(ctx, v, Classify(cb.custCause, cb.custTech), fmt.Sprintf("customer leg ended, cause %d/%d", cb.custCause, cb.custTech))
	case !custUp && ctx.Err() != nil:
		return stopped("the customer rang")
	case !custUp:
		cb.hangup(cb.custCh)
		return cb.customerFailed(ctx, v, ResultNoAnswer, "customer did not answer: "+errString(err))
	}

	// A human, not a voicemail: optional greeting and confirmation digit. An answer another
	// daemon heard already counts as one (the confirm digit pressed, where the queue asks it).
	if cb.heardAt.IsZero() {
		if v, lost := cb.confirmHuman(ctx, v); lost {
			return v
		}
	}

	// Connected: the promise is kept or late from this instant, or from when another daemon
	// heard the answer this one could not.
	cb.connectedAt = cb.env.clk.Now()
	if !cb.heardAt.IsZero() && cb.heardAt.Before(cb.connectedAt) {
		cb.connectedAt = cb.heardAt
	}
	v.custResult = ResultAnswered
	v.kind = connected
	cb.talking.Store(true)
	var refused error
	if cb.connect, refused = cb.recordConnect(ctx); refused != nil {
		return verdict{kind: taken, agentResult: ResultAnswered, custResult: ResultAnswered, detail: refused.Error()}
	}
	cb.progress(StepCustomerAnswered, "")

	// The conversation lasts until either side hangs up; ARI bridges do not hang up the other.
	_ = cb.await(ctx, 0, func(*ari.Event) bool { return cb.agentGone || cb.custGone })
	v.detail = "conversation ended"
	if ctx.Err() != nil && !cb.agentGone && !cb.custGone {
		v.detail = "conversation cut at shutdown"
	}
	return v
}

// confirmHuman plays the queue's greeting to a customer who answered and waits for its confirm
// digit, where it has them: a person, not a voicemail. lost says the customer was not reached
// after all, with the verdict that tells why.
func (cb *callback) confirmHuman(ctx context.Context, v verdict) (_ verdict, lost bool) {
	gaps := cb.custResyncs
	greet := func(what string) bool {
		if len(cb.q.Greeting) == 0 {
			return true
		}
		err := cb.play(ctx, cb.custCh, what, cb.q.Greeting)
		return err == nil || !(cb.custGone || cb.agentGone || ctx.Err() != nil)
	}
	if !greet("greeting") {
		return cb.afterAnswerLost(ctx, v, "during the greeting"), true
	}
	if cb.q.ConfirmDigit != "" {
		// A press another daemon heard counts too: a wait that ran out in silence reads it
		// (witnessed), for the key may have gone to another client holding the control app.
		pressed := func() bool { return strings.Contains(cb.custDigits, cb.q.ConfirmDigit) || !cb.heardAt.IsZero() }
		for asked := 0; !pressed(); asked++ {
			gapped := func() bool { return cb.custResyncs != gaps && asked < maxConfirmAsksAgain }
			// A gap may have fallen in the greeting already, its resync read while the greeting's
			// end was awaited: no event is coming to say so again, so it is asked again at once.
			var err error
			if !gapped() {
				err = cb.await(ctx, cb.q.ConfirmTimeout, func(*ari.Event) bool {
					return pressed() || cb.custGone || cb.agentGone || gapped()
				})
			}
			if err != nil && ctx.Err() == nil && !cb.custGone && !cb.agentGone {
				cb.witnessed(ctx)
			}
			if err != nil || pressed() || cb.custGone || cb.agentGone {
				break
			}
			// A socket gap since the customer was asked: a key pressed in it is lost for good
			// (Asterisk keeps no record of DTMF), so ask again, a bounded number of times lest
			// a flapping socket hold the call for ever.
			gaps = cb.custResyncs
			cb.log.Info("asking the customer for the confirm digit again: a key pressed in a socket gap is lost",
				zap.Int("asked_again", asked+1))
			if !greet(fmt.Sprintf("greeting-%d", asked+2)) {
				return cb.afterAnswerLost(ctx, v, "during the greeting"), true
			}
		}
		if !pressed() {
			if cb.custGone || cb.agentGone || ctx.Err() != nil {
				return cb.afterAnswerLost(ctx, v, "before confirming"), true
			}
			cb.hangup(cb.custCh)
			return cb.customerFailed(ctx, v, ResultNoConfirmation, "customer answered but did not press "+cb.q.ConfirmDigit), true
		}
	}

	return v, false
}

// earlierLegRecheck is how long a promise given back because a leg of an earlier claim is
// still up waits before it is claimed again: the janitor hangs such a leg up, or adopts its
// conversation, at its next look, which is about as far off.
const earlierLegRecheck = 5 * time.Second

// earlierClaimUp looks for a channel of an earlier claim of this promise on the Asterisk
// before anyone is rung. After a kill -9, Reclaim hands a promise back while the dead daemon's
// customer leg may still ring or talk; ringing the customer again meanwhile would call them
// twice at once. Such a promise goes back without using an attempt (v says who was rung so
// far) and is looked at again shortly. When the channels cannot be listed, nobody is rung
// either: Asterisk is in trouble, and a double dial is the worse mistake. The first claim of
// a promise has no earlier claim, so it spares Asterisk the listing of every channel.
func (cb *callback) earlierClaimUp(ctx context.Context, v verdict) (verdict, bool) {
	if cb.job.Lease.First {
		return v, false
	}
	chans, err := cb.pbx.REST.Channels(ctx)
	if err != nil {
		v.kind, v.detail = release, "listing the channels before ringing failed: "+err.Error()
		if ctx.Err() != nil {
			v.detail = "stopped before ringing"
		} else {
			v.cool = true
		}
		return v, true
	}
	promise := strings.ToLower(cb.job.ID)
	for _, ch := range chans {
		id, ok := ari.ParseCallbackID(ch.ID)
		if !ok || id.Leg == "" || id.Promise != promise || id.Token == cb.job.Lease.Token {
			continue
		}
		cb.log.Warn("a leg of an earlier claim of this promise is still up; giving the promise back without ringing anyone",
			zap.String("channel", ch.ID), zap.String("state", ch.State), zap.Int64("earlier_claim", id.Token))
		v.kind, v.until = release, cb.env.clk.Now().Add(earlierLegRecheck)
		v.detail = "leg " + ch.ID + " of an earlier claim is still up"
		return v, true
	}
	return v, false
}

// maxConfirmAsksAgain bounds how often a customer is asked again for the confirm digit after
// socket gaps.
const maxConfirmAsksAgain = 3

// afterAnswerLost handles a customer who answered and then was lost before confirming.
func (cb *callback) afterAnswerLost(ctx context.Context, v verdict, when string) verdict {
	switch {
	case cb.custGone:
		return cb.customerFailed(ctx, v, ResultNoConfirmation, "customer hung up "+when)
	case cb.agentGone:
		v.kind, v.agentResult, v.custResult, v.detail = retry, ResultHungUp, ResultFailed, "agent "+cb.agent.ID+" hung up "+when
		return v
	}
	// Stopped after the customer answered: that call was an attempt.
	v.kind, v.custResult, v.detail, v.now = retry, ResultFailed, "stopped "+when, true
	return v
}

// customerFailed tells the agent why the customer was not reached and hands the promise back
// for a retry.
func (cb *callback) customerFailed(ctx context.Context, v verdict, result, detail string) verdict {
	v.kind, v.custResult, v.detail = retry, result, detail
	cb.hangup(cb.custCh)
	if !cb.agentGone && ctx.Err() == nil {
		_ = cb.play(ctx, cb.agentCh, "notice", []string{customerNotice(result)})
	}
	return v
}
