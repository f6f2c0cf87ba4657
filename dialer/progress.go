package dialer

import (
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
