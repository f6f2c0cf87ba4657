package dialer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/queue"
)

// REST is the part of one Asterisk's REST API that the dialer uses.
type REST interface {
	Directory
	Originate(ctx context.Context, req ari.OriginateRequest) (ari.Channel, error)
	CreateChannel(ctx context.Context, req ari.CreateRequest) (ari.Channel, error)
	Dial(ctx context.Context, id, caller string, timeout time.Duration) error
	Hangup(ctx context.Context, id, reason string) error
	Play(ctx context.Context, channelID, playbackID string, media []string) (ari.Playback, error)
	CreateBridge(ctx context.Context, id, typ string) (ari.Bridge, error)
	AddChannel(ctx context.Context, bridgeID, channelID string) error
	DestroyBridge(ctx context.Context, id string) error
}

// Call legs and results, the labels of callbackd_call_attempts_total.
const (
	LegAgent    = "agent"
	LegCustomer = "customer"

	ResultAnswered       = "answered"
	ResultNoAnswer       = "no_answer"
	ResultBusy           = "busy"
	ResultRejected       = "rejected"
	ResultUnavailable    = "unavailable"
	ResultFailed         = "failed"
	ResultHungUp         = "hung_up"
	ResultNoConfirmation = "no_confirmation"
)

// AttemptResults lists the results of each leg, for metrics that start at zero.
func AttemptResults() map[string][]string {
	return map[string][]string{
		LegAgent:    {ResultAnswered, ResultNoAnswer, ResultUnavailable, ResultHungUp},
		LegCustomer: {ResultAnswered, ResultBusy, ResultNoAnswer, ResultRejected, ResultUnavailable, ResultFailed, ResultNoConfirmation},
	}
}

// Classify names why an ARI-dialled leg ended before it answered. As recorded (traces 08–13),
// such a leg gets no final Dial event, so the ChannelDestroyed cause (Q.850) and tech_cause
// (SIP) are all there is. A rejected call reads like busy (17/486) on the recordings; only a
// 603 Decline or Q.850 21 is told apart.
func Classify(cause, techCause int) string {
	switch {
	case cause == 21 || techCause == 603:
		return ResultRejected
	case cause == 17 || techCause == 486 || techCause == 600:
		return ResultBusy
	case cause == 18 || cause == 19 || techCause == 480 || techCause == 408:
		return ResultNoAnswer
	case cause == 1 || cause == 3 || cause == 20 || cause == 27 || cause == 34 || cause == 38 ||
		techCause == 404 || techCause == 503:
		return ResultUnavailable
	}
	return ResultFailed
}

var errTimeout = errors.New("timed out")

// errTakenAway cancels a callback whose promise was taken from it: resolved or cancelled
// while dialling, or its lease reclaimed.
var errTakenAway = errors.New("promise taken away from this callback")

// verdict is how a callback ended, for settling the promise and the agent.
type verdict struct {
	kind   verdictKind
	detail string
	// agentResult and custResult are what each leg did, "" when the leg was never rung.
	agentResult, custResult string
	// now: a retry may be dialled again at once (the daemon stopped mid-call), not after
	// retry_backoff. cool: hold the agent back as after a no-answer (something failed
	// around them, and ringing them again at once would fail the same way).
	now, cool bool
}

type verdictKind int

const (
	release   verdictKind = iota // customer never dialled: give the promise back, no attempt used
	retry                        // customer dialled and not reached: one attempt used
	connected                    // customer reached: kept or late
	failed                       // must never be dialled (allow-list)
	taken                        // promise taken away: nothing to settle
)

// callback is one agent-first callback: one agent, one claimed promise.
type callback struct {
	d     *Dispatcher
	pbx   PBX
	agent AgentView
	job   queue.Job
	q     config.Queue
	in    *inbox
	log   *zap.Logger

	agentCh, custCh, bridge string
	agentUp, custDialled    bool
	custCreated             bool // the customer leg may exist at Asterisk (even if its create failed)
	agentGone, custGone     bool
	custCause, custTech     int
	custDigits              string // every key the customer pressed, even during the greeting
	connectedAt             time.Time
}

func (cb *callback) ids() (agent, cust, bridge string) {
	base := fmt.Sprintf("cbd-%s-%d", strings.ToLower(cb.job.ID), cb.job.Lease.Token)
	return base + "-agent", base + "-customer", base
}

// run drives the call flow of design §Dispatch until it has a verdict. It never settles
// the promise itself; ctx ends when the daemon's grace period is over or the promise is
// taken away.
func (cb *callback) run(ctx context.Context) verdict {
	d := cb.d
	rest := cb.pbx.REST
	cb.agentCh, cb.custCh, cb.bridge = cb.ids()

	// Re-check the device: the pool's view may be a moment old.
	ds, err := rest.DeviceState(ctx, cb.agent.Endpoint)
	switch {
	case err != nil:
		cb.log.Warn("re-checking the agent's device failed; ringing on the last known state", zap.Error(err))
	case ds.State != deviceNotInUse:
		d.pool.setDevice(cb.agent.ID, ds.State)
		return verdict{kind: release, detail: "agent " + cb.agent.ID + " is " + ds.State}
	}

	d.control.Watch(cb.pbx.ID, cb.agentCh, cb.in)
	d.control.Watch(cb.pbx.ID, cb.custCh, cb.in)
	defer d.control.Forget(cb.agentCh, cb.custCh)

	d.progress(cb, StepAgentRung, "")
	_, err = rest.Originate(ctx, ari.OriginateRequest{
		Endpoint:  cb.agent.Endpoint,
		App:       cb.pbx.ControlApp,
		AppArgs:   "agent," + cb.job.ID,
		CallerID:  callerID(cb.job.Name, cb.job.Number),
		Timeout:   int(seconds(d.cfg.Dialer.AgentRingTimeout.D())),
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

	// Wait for the agent to answer (StasisStart) or give up.
	err = cb.await(ctx, d.cfg.Dialer.AgentRingTimeout.D()+10*time.Second, func(ev *ari.Event) bool {
		if ev.Channel != nil && ev.Channel.ID == cb.agentCh &&
			(ev.Type == "StasisStart" || ev.Type == EventSnapshot && ev.Channel.State == "Up") {
			cb.agentUp = true
		}
		return cb.agentUp || cb.agentGone
	})
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
	d := cb.d
	rest := cb.pbx.REST
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
	if media := cb.d.whisper(cb.job, cb.q); len(media) > 0 {
		d.progress(cb, StepWhisper, strings.Join(media, ","))
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
	if !cb.q.CallingHours.Open(d.clk.Now()) {
		_ = cb.play(ctx, cb.agentCh, "notice", []string{"sound:callbackd-calling-hours-closed"})
		v.kind, v.detail = release, "calling hours closed before the customer was dialled"
		return v
	}

	// The customer leg: created with the company's caller id, bridged before dialling so the
	// agent hears ringback, then dialled.
	cid := d.cfg.Dialer.CallerID
	cb.custCreated = true
	_, err := rest.CreateChannel(ctx, ari.CreateRequest{
		ChannelCreateRequest: ari.ChannelCreateRequest{
			Endpoint:  d.cfg.Dialer.CustomerDialString(cb.job.Number),
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
	if err := rest.AddChannel(ctx, cb.bridge, cb.custCh); err != nil {
		// Not the customer's doing, and their phone has not rung: no attempt is used.
		v.kind, v.detail, v.cool = release, "bridging the customer leg failed: "+err.Error(), true
		return v
	}
	d.progress(cb, StepCustomerDialled, "")
	cb.custDialled = true
	// No caller: Asterisk would copy the caller's id — the agent leg shows the customer's own
	// number — over the connected line set above, and the customer would see themselves.
	if err := rest.Dial(ctx, cb.custCh, "", d.cfg.Dialer.CustomerRingTimeout.D()); err != nil {
		if ctx.Err() != nil {
			return stopped("dialling the customer")
		}
		return cb.customerFailed(ctx, v, ResultUnavailable, "dialling the customer failed: "+err.Error())
	}
	custUp := false
	err = cb.await(ctx, d.cfg.Dialer.CustomerRingTimeout.D()+15*time.Second, func(ev *ari.Event) bool {
		switch {
		case (ev.Type == "ChannelStateChange" || ev.Type == EventSnapshot) && ev.Channel != nil &&
			ev.Channel.ID == cb.custCh && ev.Channel.State == "Up":
			custUp = true
		case ev.Type == "Dial" && ev.Peer != nil && ev.Peer.ID == cb.custCh && ev.DialStatus == "ANSWER":
			custUp = true
		}
		return custUp || cb.custGone || cb.agentGone
	})
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

	// A human, not a voicemail: optional greeting and confirmation digit.
	if len(cb.q.Greeting) > 0 {
		if err := cb.play(ctx, cb.custCh, "greeting", cb.q.Greeting); err != nil && (cb.custGone || cb.agentGone || ctx.Err() != nil) {
			return cb.afterAnswerLost(ctx, v, "during the greeting")
		}
	}
	if cb.q.ConfirmDigit != "" {
		pressed := func() bool { return strings.Contains(cb.custDigits, cb.q.ConfirmDigit) }
		if !pressed() {
			_ = cb.await(ctx, cb.q.ConfirmTimeout.D(), func(*ari.Event) bool {
				return pressed() || cb.custGone || cb.agentGone
			})
		}
		if !pressed() {
			if cb.custGone || cb.agentGone || ctx.Err() != nil {
				return cb.afterAnswerLost(ctx, v, "before confirming")
			}
			cb.hangup(cb.custCh)
			return cb.customerFailed(ctx, v, ResultNoConfirmation, "customer answered but did not press "+cb.q.ConfirmDigit)
		}
	}

	// Connected: the promise is kept or late from this instant.
	cb.connectedAt = d.clk.Now()
	v.custResult = ResultAnswered
	v.kind = connected
	if _, err := d.store.MarkConnected(context.WithoutCancel(ctx), cb.job.Ref(), cb.job.Lease.Token, cb.connectedAt); err != nil {
		if errors.Is(err, queue.ErrStaleToken) || errors.Is(err, queue.ErrWrongState) || errors.Is(err, queue.ErrNotFound) {
			return verdict{kind: taken, agentResult: ResultAnswered, custResult: ResultAnswered, detail: err.Error()}
		}
		cb.log.Error("recording the connect failed; the outcome is still settled at hang-up", zap.Error(err))
	}
	d.progress(cb, StepCustomerAnswered, "")

	// The conversation lasts until either side hangs up; ARI bridges do not hang up the other.
	_ = cb.await(ctx, 0, func(*ari.Event) bool { return cb.agentGone || cb.custGone })
	v.detail = "conversation ended"
	if ctx.Err() != nil && !cb.agentGone && !cb.custGone {
		v.detail = "conversation cut at shutdown"
	}
	return v
}

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
		_ = cb.play(ctx, cb.agentCh, "notice", []string{"sound:callbackd-customer-" + strings.ReplaceAll(result, "_", "-")})
	}
	return v
}

// play plays media on a channel and waits until it finished, or the channel ended.
func (cb *callback) play(ctx context.Context, channel, what string, media []string) error {
	id := cb.bridge + "-" + what
	if _, err := cb.pbx.REST.Play(ctx, channel, id, media); err != nil {
		return err
	}
	done := false
	err := cb.await(ctx, time.Duration(len(media))*15*time.Second+5*time.Second, func(ev *ari.Event) bool {
		if ev.Type == "PlaybackFinished" && ev.Playback != nil && ev.Playback.ID == id {
			done = true
		}
		return done || (channel == cb.agentCh && cb.agentGone) || (channel == cb.custCh && cb.custGone)
	})
	if !done {
		if err == nil {
			err = errors.New("channel ended during playback")
		}
		return fmt.Errorf("playing %s: %w", what, err)
	}
	return nil
}

// await reads events until stop says so, timeout (0: none) passes or ctx ends. Ends of
// either leg are recorded on the way, whatever stop looks for.
func (cb *callback) await(ctx context.Context, timeout time.Duration, stop func(*ari.Event) bool) error {
	var tc <-chan time.Time
	if timeout > 0 {
		tc = cb.d.clk.After(timeout)
	}
	for {
		ev, err := cb.in.next(ctx, tc)
		if err != nil {
			return err
		}
		cb.note(ev)
		if stop(ev) {
			return nil
		}
	}
}

// note records what happened to the legs: keys pressed, hang-up causes, a leg gone. A leg
// counts as gone on ChannelDestroyed (or when a resync no longer lists it), not on StasisEnd,
// which comes first and carries no cause.
func (cb *callback) note(ev *ari.Event) {
	if ev.Channel == nil {
		return
	}
	id := ev.Channel.ID
	switch ev.Type {
	case "ChannelDtmfReceived":
		if id == cb.custCh {
			cb.custDigits += ev.Digit
		}
	case "ChannelHangupRequest", "ChannelDestroyed", EventGone:
		// A soft hang-up request's cause (32 in traces 07, 09, 13) is a flag, not why the
		// call failed.
		if id == cb.custCh && !(ev.Type == "ChannelHangupRequest" && ev.Soft) {
			if ev.Cause != nil && *ev.Cause != 0 {
				cb.custCause = *ev.Cause
			}
			if ev.TechCause != nil && *ev.TechCause != 0 {
				cb.custTech = *ev.TechCause
			}
		}
		if ev.Type == "ChannelHangupRequest" {
			return
		}
		switch id {
		case cb.agentCh:
			cb.agentGone = true
		case cb.custCh:
			cb.custGone = true
		}
	}
}

// hangup ends a leg that may still be up; it works after shutdown began.
func (cb *callback) hangup(id string) {
	if id == "" || (id == cb.agentCh && cb.agentGone) || (id == cb.custCh && (cb.custGone || !cb.custCreated)) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cb.pbx.REST.Hangup(ctx, id, "normal"); err != nil && ari.StatusOf(err) != 404 {
		cb.log.Warn("hanging up a callback leg failed", zap.String("channel", id), zap.Error(err))
	}
}

func (cb *callback) destroyBridge() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cb.pbx.REST.DestroyBridge(ctx, cb.bridge); err != nil && ari.StatusOf(err) != 404 {
		cb.log.Warn("destroying the callback bridge failed", zap.String("bridge", cb.bridge), zap.Error(err))
	}
}

// callerID is what the agent's phone shows: the customer, so the agent knows who it is.
func callerID(name, number string) string {
	name = strings.Map(func(r rune) rune {
		if strings.ContainsRune("\"<>\r\n", r) {
			return -1
		}
		return r
	}, name)
	if name == "" {
		name = "Callback"
	}
	return `"` + name + `" <` + number + `>`
}

func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

func errString(err error) string {
	if err == nil {
		return "no answer"
	}
	return err.Error()
}
