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

// The values of queues[].promise_per: how far a customer's callbacks are merged into one.
const (
	// PromisePerCustomer: a customer owed a callback in another queue (also per customer) gets
	// one promise, in the queue of the promise already open: the earliest deadline and every
	// reason and target kept. The default: one customer, one call back.
	PromisePerCustomer = "customer"
	// PromisePerQueue: this queue keeps its own promise, beside any other queue's.
	PromisePerQueue = "queue"
)
