package dialer

import (
	"context"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// Steps of a callback, as reported to DispatcherOptions.OnProgress.
const (
	StepAgentRung        = "agent rung"
	StepWhisper          = "whisper"
	StepCustomerDialled  = "customer dialled"
	StepCustomerAnswered = "customer answered"
	StepSettled          = "settled"
	// StepTakenAway: the promise was resolved, cancelled or reclaimed under the callback, so
	// the callback hung up and left its state to whoever holds it now.
	StepTakenAway = "taken away"
)

// Progress is one step of one callback, for timelines (demo) and tests.
type Progress struct {
	At    time.Time
	Step  string
	Job   queue.Job
	Agent string
	// Detail says more: the whisper media, why a callback ended.
	Detail string
	// For StepSettled: the promise's state afterwards (pending again, kept, late, ...) and
	// what each leg did ("" when it was never rung).
	State                       queue.State
	AgentResult, CustomerResult string
}

// progress logs a step of cb and reports it.
func (cb *callback) progress(step, detail string) {
	if step == StepWhisper {
		// The whisper spells the customer's number; the log has it (masked) already.
		cb.log.Info("callback "+step, zap.Int("media", strings.Count(detail, ",")+1))
	} else {
		cb.log.Info("callback "+step, zap.String("detail", detail))
	}
	cb.env.report(Progress{At: cb.env.clk.Now(), Step: step, Job: cb.job, Agent: cb.agent.ID, Detail: detail})
}

// emitTimeout bounds how long an event may take to write: it is news for the API, the page
// and webhooks, never a reason to keep an agent's phone ringing in silence.
const emitTimeout = 2 * time.Second

// emit appends an event about cb's promise to the event stream, in the background: with Redis
// slow or away the call goes on, and the loss is logged (the transitions' own events are
// written with the change, so only this step's news can be lost).
func (cb *callback) emit(ctx context.Context, t queue.EventType, data map[string]string) {
	ref := cb.job.Ref()
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), emitTimeout)
		defer cancel()
		if err := cb.env.store.Emit(ctx, ref, t, data); err != nil {
			cb.log.Warn("event not written", zap.String("event", string(t)), zap.Error(err))
		}
	}()
}
