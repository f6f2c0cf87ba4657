package dialer

import (
	"slices"
	"time"

	"github.com/callbackd/callbackd/queue"
)

// Policy is everything the engine is told about the business, as plain values: read from the
// configuration once (PolicyFrom), never looked up in the YAML tree while calls are placed.
type Policy struct {
	Queues []QueuePolicy
	Agents []Agent
	// Routes pick a request's queue by what the customer asked for, before the target's
	// agent queue and DefaultQueue (see Route).
	Routes []Route
	// DefaultQueue takes promises no route and no agent's extension claims ("": the first queue).
	DefaultQueue string
	Calls        CallSettings
	// Limits are the rate limits on promises and dials (dialer.rate_limits).
	Limits RateLimits
	// KeptRatioWindow is the window of callbackd_promise_kept_ratio.
	KeptRatioWindow time.Duration
}

// Queue returns the policy of the queue called name.
func (p Policy) Queue(name string) (QueuePolicy, bool) {
	for _, q := range p.Queues {
		if q.Name == name {
			return q, true
		}
	}
	return QueuePolicy{}, false
}

// ConfirmDigit is the digit queue name's customers must press to count as reached; "" for
// none or an unknown queue.
func (p Policy) ConfirmDigit(name string) string {
	q, _ := p.Queue(name)
	return q.ConfirmDigit
}

// QueueNames lists the queues in configuration order.
func (p Policy) QueueNames() []string {
	names := make([]string, len(p.Queues))
	for i, q := range p.Queues {
		names[i] = q.Name
	}
	return names
}

// QueuePolicy is how one callback queue makes and keeps its promises.
type QueuePolicy struct {
	Name string
	// Deadlines is the promised time to callback per reason; a reason missing here cannot
	// be promised in this queue.
	Deadlines       map[queue.Reason]time.Duration
	MaxAttempts     int
	RetryBackoff    time.Duration
	OwnerPreference float64
	Hours           Hours
	// WallClock measures deadlines, retries and holds in wall time (deadline_clock: wall)
	// rather than in Hours' open time.
	WallClock bool
	// Greeting is played to the customer on answer; ConfirmDigit, when set, must be pressed
	// within ConfirmTimeout for the call to count as reaching a person.
	Greeting       []string
	ConfirmDigit   string
	ConfirmTimeout time.Duration
	// ResolveByQueue closes an open promise when the customer, calling in again, reaches any
	// agent serving this queue (queues[].resolve: queue); otherwise only reaching one of the
	// promise's targets does.
	ResolveByQueue bool
	// PerQueue keeps this queue's promises apart (queues[].promise_per: queue); otherwise a
	// customer already owed a callback in another such queue is added to that promise.
	PerQueue bool
}

// Hours is when a queue's customers may be rung, in the queue's own time zone, and the
// business time its deadlines, retries, owner holds and forecast are measured in
// (calendar.Calendar; see business.go).
type Hours interface {
	Open(t time.Time) bool
	// NextOpening is t when open, else the next opening; zero when none is found.
	NextOpening(t time.Time) time.Time
	// NextClosing is the end of the open stretch containing t, or of the next one.
	NextClosing(t time.Time) time.Time
	// Add is the instant d of open time after t; Between the open time in [a, b).
	Add(t time.Time, d time.Duration) time.Time
	Between(a, b time.Time) time.Duration
	Location() (*time.Location, error)
}

// Agent is one configured agent.
type Agent struct {
	ID        string
	Name      string
	Endpoint  string
	Extension string
	// Queues the agent takes callbacks for; empty means every queue.
	Queues []string
	// Shift is when the agent works (agents[].shifts); nil: always.
	Shift Hours
}

// Serves reports whether the agent takes callbacks for queue.
func (a Agent) Serves(queueName string) bool { return serves(a.Queues, queueName) }

func serves(queues []string, name string) bool {
	return len(queues) == 0 || slices.Contains(queues, name)
}

// CallSettings is how every callback is placed.
type CallSettings struct {
	AgentRingTimeout    time.Duration
	CustomerRingTimeout time.Duration
	AgentCooldown       time.Duration
	WrapUp              time.Duration
	Lease               time.Duration
	ShutdownGrace       time.Duration
	// CallerID is what the customer sees.
	CallerID CallerID
	// Whisper is the agent's media list with placeholders (see whisperFor).
	Whisper []string
	// DialString is the Asterisk endpoint that reaches a customer's number.
	DialString func(number string) string
	// Allowed is the toll-fraud guard (dialer.allow): nothing else is ever dialled.
	Allowed func(number string) bool
	// AllowReason says in words why Allowed decided as it did, for the refusal's log line.
	AllowReason func(number string) string
}

// CallerID is a name and number shown on a phone.
type CallerID struct {
	Number string
	Name   string
}
