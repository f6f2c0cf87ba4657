package dialer

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

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
	// until: a release waits at least this long (a rate limit's window).
	until time.Time
}

type verdictKind int

const (
	release   verdictKind = iota // customer never dialled: give the promise back, no attempt used
	retry                        // customer dialled and not reached: one attempt used
	connected                    // customer reached: kept or late
	failed                       // must never be dialled (allow-list)
	taken                        // promise taken away: nothing to settle
)

// holdsAgentBack says how long the agent rests after this verdict: a wrap-up after talking
// to a customer, a cooldown after not answering or a failure around them.
func (v verdict) holdsAgentBack(calls CallSettings) (wrap, cool time.Duration) {
	if v.cool || v.agentResult == ResultNoAnswer || v.agentResult == ResultUnavailable {
		cool = calls.AgentCooldown
	}
	if v.kind == connected {
		wrap = calls.WrapUp
	}
	return wrap, cool
}

// settle writes the verdict to the store and the metrics.
func (cb *callback) settle(v verdict) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, m := cb.env.store, cb.env.metrics
	now := cb.env.clk.Now()
	job, ref, tok := cb.job, cb.job.Ref(), cb.job.Lease.Token
	m.attempt(job.Queue, LegAgent, v.agentResult)
	m.attempt(job.Queue, LegCustomer, v.custResult)
	if v.kind == taken {
		cb.log.Info("callback ended: the promise was taken away", zap.String("detail", v.detail),
			zap.String("agent_result", v.agentResult), zap.String("customer_result", v.custResult))
		cb.env.report(Progress{At: now, Step: StepTakenAway, Job: job, Agent: cb.agent.ID, Detail: v.detail,
			AgentResult: v.agentResult, CustomerResult: v.custResult})
		return
	}
	var after queue.Job
	var err error
	switch v.kind {
	case release:
		after, err = store.Release(ctx, ref, tok, later(now, v.until), v.detail)
	case retry:
		nb := cb.q.RetryAt(now)
		if v.now {
			nb = now
		}
		after, err = store.Retry(ctx, ref, tok, nb, v.detail)
	case failed:
		after, err = store.Complete(ctx, ref, tok, queue.StateFailed, v.detail)
	case connected:
		var counted bool
		after, counted, err = cb.settleConnected(v)
		if counted {
			m.connected(job, cb.connectedAt)
		} else if err == nil {
			// Finished and counted by the Reclaim that took the lease back.
			cb.log.Info("callback settled", zap.String("state", string(after.State)), zap.String("detail", v.detail+" (settled by Reclaim)"),
				zap.String("agent_result", v.agentResult), zap.String("customer_result", v.custResult), zap.Int("attempts", after.Attempts))
			cb.env.report(Progress{At: now, Step: StepSettled, Job: after, Agent: cb.agent.ID, Detail: v.detail,
				State: after.State, AgentResult: v.agentResult, CustomerResult: v.custResult})
			return
		}
	}
	if err != nil {
		cb.log.Error("settling the promise failed; its lease runs out and it comes back",
			zap.String("verdict", v.detail), zap.Error(err))
		return
	}
	if !after.State.Open() {
		m.completed(job.Queue, after.State)
	}
	cb.log.Info("callback settled", zap.String("state", string(after.State)), zap.String("detail", v.detail),
		zap.String("agent_result", v.agentResult), zap.String("customer_result", v.custResult),
		zap.Int("attempts", after.Attempts))
	cb.env.report(Progress{At: now, Step: StepSettled, Job: after, Agent: cb.agent.ID, Detail: v.detail,
		State: after.State, AgentResult: v.agentResult, CustomerResult: v.custResult})
}
