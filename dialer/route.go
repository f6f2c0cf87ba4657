package dialer

import (
	"github.com/callbackd/callbackd/ari/detect"
)

// Route sends the promises of calls that match to a callback queue (detector.routes).
type Route struct {
	// Rule names the route in explanations and logs: "detector.routes[2] (extension _20XX)".
	Rule string
	// Key is what of the request the route looks at: "asterisk_queue", "ring_group",
	// "extension", "did" or "context".
	Key   string
	Match func(string) bool
	Queue string
}

// What chose a request's queue when no route did.
const (
	RuleAgentQueue   = "the target's agent queue"
	RuleDefaultQueue = "detector.default_queue"
	RuleFirstQueue   = "the first queue"
)

// value is what of r the route's Key names. A route by extension matches the target only
// when the target is not an Asterisk queue: a queue's name is no extension.
func (rt Route) value(r detect.Request) string {
	switch rt.Key {
	case "asterisk_queue":
		return r.AsteriskQueue
	case "ring_group":
		return r.DialString
	case "extension":
		if r.AsteriskQueue == "" {
			return r.Target
		}
	case "did":
		return r.DID
	case "context":
		return r.Context
	}
	return ""
}

// Route picks the callback queue of a request, and says which rule chose it. The order:
// detector.routes in the order written (the first that matches wins), then the first queue of
// the agent whose extension or mailbox the target is, then detector.default_queue.
func (p Policy) Route(r detect.Request) (QueuePolicy, string) {
	for _, rt := range p.Routes {
		if v := rt.value(r); v != "" && rt.Match != nil && rt.Match(v) {
			if q, ok := p.Queue(rt.Queue); ok {
				return q, rt.Rule
			}
		}
	}
	for _, a := range p.Agents {
		if a.Extension == "" || a.Extension != r.Target {
			continue
		}
		for _, name := range a.Queues {
			if q, ok := p.Queue(name); ok {
				return q, RuleAgentQueue + " (agent " + a.ID + ")"
			}
		}
	}
	if q, ok := p.Queue(p.DefaultQueue); ok {
		return q, RuleDefaultQueue
	}
	return p.Queues[0], RuleFirstQueue
}
