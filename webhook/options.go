// Package webhook delivers promise events to the HTTP endpoints a CRM runs. Every daemon on
// one Redis shares the work: each endpoint has a consumer group on every queue's event stream,
// each daemon is a consumer in it, and the retry bookkeeping lives in Redis next to the
// stream, so a delivery a daemon started is finished by another when that one stops or dies.
// Deliveries are at least once, signed in the Standard Webhooks layout (internal/webhooksig).
package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/webhooksig"
	"github.com/callbackd/callbackd/queue"
)

// Endpoint is one receiver of events.
type Endpoint struct {
	// Name labels the metrics and names the consumer group (GroupPrefix + Name).
	Name string
	URL  string
	// Events are the types sent; empty sends every type. Others are acknowledged unsent.
	Events []queue.EventType
	// Key is the decoded signing secret (webhooksig.ParseSecret).
	Key []byte
	// RetryFor is how long a failing event is retried, counted from its first attempt.
	RetryFor time.Duration
	// Timeout bounds one request.
	Timeout time.Duration
	// MaskNumbers masks the customer's number (and numbers in the details) in the body.
	MaskNumbers bool
}

// Streams is what the deliverer needs of the promise store: the queues and their streams.
type Streams interface {
	Queues() []string
	EventStreamKey(queue string) string
}

// Options configure a Deliverer. Redis, Streams and Instance are required.
type Options struct {
	Redis     redis.UniversalClient
	Streams   Streams
	Endpoints []Endpoint
	// Instance is this daemon's consumer name in every group; unique among the daemons on
	// the Redis and the same for the life of the process.
	Instance   string
	Clock      clock.Clock
	Logger     *zap.Logger
	Registerer prometheus.Registerer
	// Client sends the requests; nil is one that never follows redirects (a 3xx is a failed
	// delivery, so a moved endpoint is noticed rather than silently trusted).
	Client *http.Client

	// The tuning below has defaults; tests shorten it.

	// Poll is how long a worker that found nothing to do waits before it looks again: the
	// most an event waits to be sent, or a due retry to be made, while Redis is idle.
	Poll time.Duration
	// Backoff is the first retry's ceiling; each retry doubles it up to MaxBackoff. The wait
	// is drawn uniformly below the ceiling (full jitter).
	Backoff, MaxBackoff time.Duration
	// ClaimIdle is how long an event may sit read but unattempted by a consumer before
	// another consumer takes it over; 0 sets it from the endpoint's timeout, well past the
	// time a live daemon needs to get to it.
	ClaimIdle time.Duration
}

// Defaults for Options fields left zero.
const (
	DefaultPoll       = 500 * time.Millisecond
	DefaultBackoff    = 5 * time.Second
	DefaultMaxBackoff = time.Hour
	// GroupPrefix starts every endpoint's consumer group name.
	GroupPrefix = "webhook:"
	// batch is how many events a worker reads or retries at a time.
	batch = 8
	// deadLetterMax bounds each dead-letter stream (approximately: MAXLEN ~).
	deadLetterMax = 10000
)

func (o *Options) check() error {
	switch {
	case o.Redis == nil || o.Streams == nil:
		return errors.New("a Redis client and the promise store's streams are required")
	case o.Instance == "":
		return errors.New("an instance name (the consumer name in every group) is required")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.Backoff)
	}
	names := map[string]bool{}
	for _, e := range o.Endpoints {
		if names[e.Name] {
			return fmt.Errorf("endpoint %q is listed twice", e.Name)
		}
		names[e.Name] = true
		if err := e.check(); err != nil {
			return fmt.Errorf("endpoint %q: %w", e.Name, err)
		}
	}
	return nil
}

func (e Endpoint) check() error {
	u, err := url.Parse(e.URL)
	switch {
	case e.Name == "":
		return errors.New("a name is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("the URL must be an absolute http:// or https:// URL")
	case len(e.Key) < webhooksig.MinSecretBytes:
		return fmt.Errorf("the key must be at least %d bytes", webhooksig.MinSecretBytes)
	case e.RetryFor <= 0 || e.Timeout <= 0:
		return errors.New("retry_for and timeout must be positive")
	}
	for _, t := range e.Events {
		if _, err := queue.ParseEventType(string(t)); err != nil {
			return err
		}
	}
	return nil
}
