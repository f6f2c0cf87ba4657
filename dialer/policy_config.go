package dialer

import (
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/queue"
)

// PolicyFrom reads a validated configuration into the engine's Policy. It is the one place
// the engine sees the YAML tree; the daemon and the tests both build the engine through it.
func PolicyFrom(cfg *config.Config) Policy {
	p := Policy{
		DefaultQueue:    cfg.Detector.DefaultQueue,
		KeptRatioWindow: cfg.Metrics.KeptRatioWindow.D(),
		Limits:          rateLimitsFrom(cfg),
		Calls: CallSettings{
			AgentRingTimeout:    cfg.Dialer.AgentRingTimeout.D(),
			CustomerRingTimeout: cfg.Dialer.CustomerRingTimeout.D(),
			AgentCooldown:       cfg.Dialer.AgentCooldown.D(),
			WrapUp:              cfg.Dialer.WrapUp.D(),
			Lease:               cfg.Dialer.Lease.D(),
			ShutdownGrace:       cfg.Dialer.ShutdownGrace.D(),
			CallerID:            CallerID{Number: cfg.Dialer.CallerID.Number, Name: cfg.Dialer.CallerID.Name},
			Whisper:             cfg.Dialer.Whisper,
			DialString:          cfg.Dialer.CustomerDialString,
			Allowed:             cfg.Allowed,
			AllowReason:         func(n string) string { return cfg.Decide(n).Reason },
		},
	}
	for _, q := range cfg.Queues {
		deadlines := map[queue.Reason]time.Duration{}
		for _, r := range queue.Reasons() {
			if d, ok := q.Deadline.For(r); ok {
				deadlines[r] = d
			}
		}
		p.Queues = append(p.Queues, QueuePolicy{
			Name:            q.Name,
			Deadlines:       deadlines,
			MaxAttempts:     q.MaxAttempts,
			RetryBackoff:    q.RetryBackoff.D(),
			OwnerPreference: q.OwnerPreference,
			Hours:           q.CallingHours,
			Greeting:        q.Greeting,
			ConfirmDigit:    q.ConfirmDigit,
			ConfirmTimeout:  q.ConfirmTimeout.D(),
		})
	}
	for _, a := range cfg.Agents {
		p.Agents = append(p.Agents, Agent{ID: a.ID, Name: a.Name, Endpoint: a.Endpoint, Extension: a.Extension, Queues: a.Queues})
	}
	return p
}
