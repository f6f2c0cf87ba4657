package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
)

// scriptedCall is one customer call of the script: when it starts (simulated time after the
// daemon is connected), what happens, and a sentence for the timeline.
type scriptedCall struct {
	at    time.Duration
	story string
	// before runs just before the call starts: phones change behaviour over the day.
	before func(*aritest.Server)
	call   aritest.InboundCall
}

// viaOperator is the main number: the operator (1000, not a callback agent) answers and does
// what follows.
func viaOperator(from string, rest ...aritest.Step) []aritest.Step {
	return append([]aritest.Step{
		aritest.NoOp("trunk: " + from + " calls the main number"),
		aritest.Set("__TRANSFER_CONTEXT", "internal"),
		aritest.Dial("PJSIP/1000", 20*time.Second, "t"),
	}, rest...)
}

// traffic is the morning's customer calls, in the order they start.
func traffic() []scriptedCall {
	const main = "+31205550100"
	return []scriptedCall{
		{at: 0, story: "calls Anna (1003) directly; nobody answers; hangs up",
			call: aritest.InboundCall{From: "+31201234501", To: "+31205550103", Steps: []aritest.Step{
				aritest.Dial("PJSIP/1003", 10*time.Second, ""),
				aritest.Playback("vm-nobodyavail"),
				aritest.CallerHangsUp(3 * time.Second),
			}}},
		{at: 5 * time.Second, story: "calls Anna directly; no answer; leaves a voicemail",
			call: aritest.InboundCall{From: "+31201234502", Name: "J. de Vries", To: "+31205550103", Steps: []aritest.Step{
				aritest.Dial("PJSIP/1003", 10*time.Second, ""),
				aritest.VoiceMail("1003@default", 6*time.Second),
			}}},
		{at: 8 * time.Second, story: "calls Ria (1001) directly; a long conversation (12 minutes)",
			call: aritest.InboundCall{From: "+31201234506", To: "+31205550101", Steps: []aritest.Step{
				aritest.Dial("PJSIP/1001", 10*time.Second, ""),
				aritest.Talk(12 * time.Minute),
			}}},
		{at: 10 * time.Second, story: "reaches Anna's voicemail and hangs up during the greeting",
			call: aritest.InboundCall{From: "+31201234503", To: "+31205550103", Steps: []aritest.Step{
				aritest.VoiceMailHangupInGreeting("1003@default", 2*time.Second),
			}}},
		{at: 15 * time.Second, story: "calls the main number; the operator transfers to Anna; no answer; voicemail",
			call: aritest.InboundCall{From: "+31201234504", Name: "Bakker Installatie", To: main, Steps: viaOperator("+31201234504",
				aritest.BlindTransfer(3*time.Second, "1003", "internal"),
				aritest.Dial("PJSIP/1003", 10*time.Second, ""),
				aritest.VoiceMail("1003@default", 5*time.Second),
			)}},
		{at: 20 * time.Second, story: "calls the main number; the operator transfers to 1004, whose phone is not registered",
			call: aritest.InboundCall{From: "+31201234505", To: main, Steps: viaOperator("+31201234505",
				aritest.BlindTransfer(3*time.Second, "1004", "internal"),
				aritest.Dial("PJSIP/1004", 10*time.Second, ""),
				aritest.Hangup(),
			)}},
		{at: 30 * time.Second, story: "calls Piet (1005) directly, whose phone is not registered",
			call: aritest.InboundCall{From: "+31201234507", Name: "Jansen BV", To: "+31205550105", Steps: []aritest.Step{
				aritest.Dial("PJSIP/1005", 10*time.Second, ""),
				aritest.Hangup(),
			}}},
	}
}

// phones are the phones of the day: agents and the customers' own phones behind the trunk.
func phones(s *aritest.Server) {
	s.SetEndpoint("PJSIP/1000", aritest.Answers(2*time.Second)) // the operator
	s.SetEndpoint("PJSIP/1001", aritest.Answers(2*time.Second)) // Ria
	s.SetEndpoint("PJSIP/1002", aritest.Answers(3*time.Second)) // Bob
	s.SetEndpoint("PJSIP/1003", aritest.Rings())                // Anna is away from her desk
	s.SetEndpoint("PJSIP/1004", aritest.Unavailable())
	s.SetEndpoint("PJSIP/1005", aritest.Unavailable())
	s.SetEndpoint("PJSIP/trunk", aritest.Behavior{Answer: true})
	talks := func(answer, talk time.Duration) aritest.Behavior {
		b := aritest.AnswersAndPresses(answer, "1")
		b.HangupAfter = talk
		return b
	}
	s.SetEndpoint("PJSIP/+31201234501@provider", talks(5*time.Second, 90*time.Second))
	s.SetEndpoint("PJSIP/+31201234502@provider", talks(4*time.Second, 2*time.Minute))
	s.SetEndpoint("PJSIP/+31201234504@provider", talks(6*time.Second, 3*time.Minute))
	s.SetEndpoint("PJSIP/+31201234505@provider", aritest.Busy(4*time.Second)) // always on the phone
	s.SetEndpoint("PJSIP/+31201234507@provider", talks(3*time.Second, time.Minute))
}

// playTraffic starts every scripted call at its time and returns once all have ended.
func playTraffic(ctx context.Context, pbx *aritest.Server, clk clock.Clock, tl *timeline) (int, error) {
	script := traffic()
	start := clk.Now()
	var running []*aritest.Call
	for _, c := range script {
		if wait := c.at - clk.Now().Sub(start); wait > 0 {
			select {
			case <-clk.After(wait):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		if c.before != nil {
			c.before(pbx)
		}
		tl.printf("call: %s %s", phone.Mask(c.call.From), c.story)
		running = append(running, pbx.Inbound(c.call))
	}
	for _, inbound := range running {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := inbound.Wait(wctx)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("a scripted call did not end: %w", err)
		}
	}
	return len(script), nil
}
