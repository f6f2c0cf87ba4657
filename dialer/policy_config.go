package dialer

import (
	"fmt"
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
		var hours Hours = q.CallingHours
		if cal, err := q.CallingHours.Calendar(); err == nil {
			hours = cal // compiled once; validation has already refused a calendar that fails
		}
		p.Queues = append(p.Queues, QueuePolicy{
			Name:            q.Name,
			Deadlines:       deadlines,
			MaxAttempts:     q.MaxAttempts,
			RetryBackoff:    q.RetryBackoff.D(),
			OwnerPreference: q.OwnerPreference,
			Hours:           hours,
			WallClock:       q.DeadlineClock == config.DeadlineWall,
			Greeting:        q.Greeting,
			ConfirmDigit:    q.ConfirmDigit,
			ConfirmTimeout:  q.ConfirmTimeout.D(),
			ResolveByQueue:  q.Resolve == config.ResolveQueue,
			PerQueue:        q.PromisePer == config.PromisePerQueue,
		})
	}
	for i, r := range cfg.Detector.Routes {
		key, value := r.Match()
		p.Routes = append(p.Routes, Route{Rule: fmt.Sprintf("detector.routes[%d] (%s %s)", i, key, value),
			Key: key, Match: r.Matcher(), Queue: r.Queue})
	}
	for _, a := range cfg.Agents {
		p.Agents = append(p.Agents, Agent{ID: a.ID, Name: a.Name, Endpoint: a.Endpoint, Extension: a.Extension,
			Queues: a.Queues, Shift: shiftOf(cfg, a)})
	}
	return p
}

// shiftOf compiles an agent's shifts in the time zone of their first queue (the default queue
// for an agent of every queue); nil when they have none: always on shift.
func shiftOf(cfg *config.Config, a config.Agent) Hours {
	name := cfg.Detector.DefaultQueue
	if len(a.Queues) > 0 {
		name = a.Queues[0]
	}
	q, ok := cfg.Queue(name)
	if !ok && len(cfg.Queues) > 0 {
		q = cfg.Queues[0]
	}
	loc, err := q.CallingHours.Location()
	if err != nil {
		loc = time.UTC
	}
	cal, err := a.ShiftCalendar(loc)
	if err != nil || cal == nil {
		return nil // validation refused bad shifts; none is always
	}
	return cal
}

// rateLimitsFrom reads dialer.rate_limits.
func rateLimitsFrom(cfg *config.Config) RateLimits {
	r := cfg.Dialer.RateLimits
	return RateLimits{PromisesPerNumberPerDay: r.PromisesPerNumberPerDay, DialsPerNumberPerDay: r.DialsPerNumberPerDay,
		BlockDigits: r.BlockDigits, PromisesPerBlockPerHour: r.PromisesPerBlockPerHour, DialsPerHour: r.DialsPerHour}
}
