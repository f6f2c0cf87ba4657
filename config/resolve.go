package config

// Resolve modes: who a customer calling in again must reach to close their open promise.
const (
	// ResolveTarget: the person, ring group or Asterisk queue the promise is about. The
	// default: a colleague who picks up may not know what the customer wanted.
	ResolveTarget = "target"
	// ResolveQueue: anyone who serves the promise's queue (an agent of it, by extension), for
	// a team where whoever answers can settle the matter.
	ResolveQueue = "queue"
)
