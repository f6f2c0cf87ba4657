package dialer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
)

// ids are the attempt's channel and bridge ids; the detector knows them as callbackd's own
// (ari.IsCallbackLeg) whatever the control application is called.
func (cb *callback) ids() (agent, cust, bridge string) {
	return ari.CallbackIDs(cb.job.ID, cb.job.Lease.Token)
}

// play plays media on a channel and waits until it finished, or the channel ended.
func (cb *callback) play(ctx context.Context, channel, what string, media []string) error {
	id := cb.bridge + "-" + what
	if _, err := cb.pbx.REST.Play(ctx, channel, id, media); err != nil {
		return err
	}
	done := false
	err := cb.await(ctx, time.Duration(len(media))*15*time.Second+5*time.Second, func(ev *ari.Event) bool {
		switch {
		case ev.Type == ari.EventPlaybackFinished && ev.Playback != nil && ev.Playback.ID == id:
			done = true
		case ev.Type == EventSnapshot && ev.Channel != nil && ev.Channel.ID == channel:
			// A resync after a socket gap: PlaybackFinished may have fallen in it, and Asterisk
			// sends no event twice. Asterisk still holds the playback only while it plays.
			done = cb.playbackOver(ctx, id)
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

// playbackOver reads a playback back from Asterisk: a 404 (res_stasis_playback forgets a
// playback once it finished or its channel left) or a final state says it is over. A failed
// read says nothing: the wait goes on, bounded by its timeout.
func (cb *callback) playbackOver(ctx context.Context, id string) bool {
	pb, err := cb.pbx.REST.Playback(ctx, id)
	switch {
	case ari.StatusOf(err) == 404:
		cb.log.Info("a playback ended during a socket gap; going on", zap.String("playback", id))
		return true
	case err != nil:
		cb.log.Warn("reading a playback back after a socket gap failed; waiting for its end", zap.String("playback", id), zap.Error(err))
		return false
	}
	return pb.State == ari.PlaybackDone || pb.State == ari.PlaybackFailed
}

// await reads events until stop says so, timeout (0: none) passes or ctx ends. Ends of
// either leg are recorded on the way, whatever stop looks for.
func (cb *callback) await(ctx context.Context, timeout time.Duration, stop func(*ari.Event) bool) error {
	var tc <-chan time.Time
	if timeout > 0 {
		tc = cb.env.clk.After(timeout)
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

// note records what happened to the legs: keys pressed, hang-up causes, a leg gone, a gap
// in the customer leg's events. A leg
// counts as gone on ChannelDestroyed (or when a resync no longer lists it), not on StasisEnd,
// which comes first and carries no cause.
func (cb *callback) note(ev *ari.Event) {
	if ev.Channel == nil {
		return
	}
	id := ev.Channel.ID
	switch ev.Type {
	case EventSnapshot:
		if id == cb.custCh {
			cb.custResyncs++
		}
	case ari.EventChannelDtmfReceived:
		if id == cb.custCh {
			cb.custDigits += ev.Digit
		}
	case ari.EventChannelHangupRequest, ari.EventChannelDestroyed, EventGone:
		// A soft hang-up request's cause (32 in traces 07, 09, 13) is a flag, not why the
		// call failed.
		if id == cb.custCh && !(ev.Type == ari.EventChannelHangupRequest && ev.Soft) {
			if ev.Cause != nil && *ev.Cause != 0 {
				cb.custCause = *ev.Cause
			}
			if ev.TechCause != nil && *ev.TechCause != 0 {
				cb.custTech = *ev.TechCause
			}
		}
		if ev.Type == ari.EventChannelHangupRequest {
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

func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

func errString(err error) string {
	if err == nil {
		return "no answer"
	}
	return err.Error()
}

// readBack hands the callback's legs, as Asterisk has them now, to note and stop, as a
// reconnect's resync would: a snapshot for a leg it lists, gone for one it does not. A wait
// that ran out without the event it waited for calls it, for those events may have gone to
// another client that took the control app over (ApplicationReplaced), and no resync comes
// until this daemon takes the app back. A leg that cannot be read says nothing. It reports
// whether stop said the wait is over.
func (cb *callback) readBack(ctx context.Context, stop func(*ari.Event) bool) bool {
	legs := []string{cb.agentCh}
	if cb.custCreated {
		legs = append(legs, cb.custCh)
	}
	over := false
	for _, id := range legs {
		ch, err := cb.pbx.REST.Channel(ctx, id)
		ev := &ari.Event{Type: EventSnapshot, AsteriskID: cb.pbx.ID, Channel: &ch}
		switch {
		case ari.StatusOf(err) == 404:
			ev = &ari.Event{Type: EventGone, AsteriskID: cb.pbx.ID, Channel: &ari.Channel{ID: id}}
		case err != nil:
			cb.log.Warn("reading a callback leg back after a silent wait failed", zap.String("channel", id), zap.Error(err))
			continue
		}
		cb.note(ev)
		if stop(ev) {
			over = true
		}
	}
	if over {
		cb.log.Warn("a wait for a callback leg ran out with no event, but Asterisk says it is over: the leg's events " +
			"went elsewhere (another ARI client holding the control app?)")
	}
	return over
}

// witnessed reads the promise back for an answer of this claim's customer that another
// daemon heard (queue.Lease.Heard; its janitor hears every callback leg through the monitor
// app, and stores an answer only once the queue's confirm digit is pressed) and keeps it in
// heardAt. A wait that ran out in silence calls it before a live conversation is hung up on.
func (cb *callback) witnessed(ctx context.Context) bool {
	j, err := cb.env.store.Get(ctx, cb.job.Ref())
	switch {
	case err != nil:
		cb.log.Warn("reading the promise back for an answer another daemon heard failed", zap.Error(err))
		return false
	case j.Lease.Token != cb.job.Lease.Token || j.Lease.Heard.IsZero():
		return false
	}
	cb.heardAt = j.Lease.Heard
	cb.log.Warn("the customer answered where this daemon could not hear it, and another daemon heard them: going on as connected",
		zap.Time("heard", j.Lease.Heard))
	return true
}
