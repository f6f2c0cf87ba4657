// Package config holds the one Config type of the daemon: loaded from a YAML file, overridden by
// CALLBACKD_* environment variables, filled with documented defaults and validated so that every
// problem is reported at once with the YAML path it belongs to.
package config

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/callbackd/callbackd/queue"
)

// Config is the whole daemon configuration. The yaml tags are the file's keys; the same keys,
// upper-cased and joined with "_", are the CALLBACKD_* environment overrides.
type Config struct {
	Redis     Redis         `yaml:"redis"`
	Asterisk  []Asterisk    `yaml:"asterisk"`
	Detector  Detector      `yaml:"detector"`
	Queues    []Queue       `yaml:"queues"`
	Agents    []Agent       `yaml:"agents"`
	Dialer    Dialer        `yaml:"dialer"`
	HTTP      HTTP          `yaml:"http"`
	Log       Log           `yaml:"log"`
	Metrics   Metrics       `yaml:"metrics"`
	Retention Duration      `yaml:"retention"`
	Webhooks  []Webhook     `yaml:"webhooks"`
	compiled  *compiledRefs `yaml:"-"`

	// InstanceID names this daemon among those sharing one Asterisk: its Stasis applications
	// are the configured monitor_app and control_app with "-<instance_id>" appended. Empty:
	// derived from the host name when the daemon starts (stasisapp.FromHost).
	InstanceID string `yaml:"instance_id"`
}

// Redis says where the promise store lives. Exactly one of Addr, URL, Sentinel or Cluster is
// used; Addr is only defaulted when none of the others is configured.
type Redis struct {
	Addr        string    `yaml:"addr"`
	URL         SecretURL `yaml:"url"`
	Sentinel    Sentinel  `yaml:"sentinel"`
	Cluster     Cluster   `yaml:"cluster"`
	Username    string    `yaml:"username"`
	Password    Secret    `yaml:"password"`
	DB          int       `yaml:"db"`
	KeyPrefix   string    `yaml:"key_prefix"`
	DialTimeout Duration  `yaml:"dial_timeout"`
	// WaitReplicas is how many replicas must have a new promise (and a customer's connect)
	// before the write counts as replicated (Redis WAIT); 0 waits for none. Replication is
	// asynchronous: without it a failover loses what the old primary had not passed on.
	WaitReplicas int `yaml:"wait_replicas"`
	// WaitTimeout bounds that wait; a write fewer replicas had by then stands, and is reported.
	WaitTimeout Duration `yaml:"wait_timeout"`
}

// Sentinel configures Redis Sentinel discovery of the current master.
type Sentinel struct {
	MasterName string   `yaml:"master_name"`
	Addrs      []string `yaml:"addrs"`
}

// Cluster configures Redis Cluster seed nodes.
type Cluster struct {
	Addrs []string `yaml:"addrs"`
}

// Mode reports which of the mutually exclusive connection modes is configured: "addr", "url",
// "sentinel", "cluster" or "" when none is.
func (r Redis) Mode() string {
	switch {
	case r.URL != "":
		return "url"
	case r.Sentinel.MasterName != "" || len(r.Sentinel.Addrs) > 0:
		return "sentinel"
	case len(r.Cluster.Addrs) > 0:
		return "cluster"
	case r.Addr != "":
		return "addr"
	}
	return ""
}

// Asterisk is one ARI connection. Two Stasis applications are used so that passively watching
// every call (monitor) never competes with the channels callbackd controls itself.
type Asterisk struct {
	Name           string    `yaml:"name"`
	URL            SecretURL `yaml:"url"`
	Username       string    `yaml:"username"`
	Password       Secret    `yaml:"password"`
	MonitorApp     string    `yaml:"monitor_app"`
	ControlApp     string    `yaml:"control_app"`
	RequestTimeout Duration  `yaml:"request_timeout"`
	Reconnect      Backoff   `yaml:"reconnect"`
}

// Backoff is an exponential backoff window.
type Backoff struct {
	Initial Duration `yaml:"initial"`
	Max     Duration `yaml:"max"`
}

// Detector decides which calls are customer calls and which destinations are internal.
type Detector struct {
	InboundContexts    []string `yaml:"inbound_contexts"`
	InternalExtension  string   `yaml:"internal_extension"`
	CustomerNumber     string   `yaml:"customer_number"`
	DefaultCountryCode string   `yaml:"default_country_code"`
	DefaultCountry     string   `yaml:"default_country"`
	DefaultQueue       string   `yaml:"default_queue"`
	// Routes send promises to a callback queue by what the customer asked for; the first
	// that matches wins, before the target agent's own queue and DefaultQueue.
	Routes []Route `yaml:"routes"`
}

// Route matches one thing about a missed call and names the callback queue its promise goes
// to. Exactly one of the match keys is set.
type Route struct {
	// AsteriskQueue is the name of an Asterisk Queue() the customer waited in ("sales").
	AsteriskQueue string `yaml:"asterisk_queue"`
	// RingGroup is the dial string of a Dial() that rang several phones
	// ("PJSIP/1001&PJSIP/1002"; the order of the phones does not matter).
	RingGroup string `yaml:"ring_group"`
	// Extension is the target extension or mailbox: exact ("1003") or an Asterisk pattern
	// ("_10XX", "_2[0-4]X.").
	Extension string `yaml:"extension"`
	// DID is the number the customer dialled (the exten they arrived at), exact or a pattern.
	DID string `yaml:"did"`
	// Context is the dialplan context the customer's call came in through.
	Context string `yaml:"context"`
	// Queue is the callback queue the promise goes to.
	Queue string `yaml:"queue"`
}

// RouteKeys are the match keys of a route, in the order a route shows them.
var RouteKeys = []string{"asterisk_queue", "ring_group", "extension", "did", "context"}

// Match returns the route's match key and its value ("" when none is set).
func (r Route) Match() (key, value string) {
	for i, v := range []string{r.AsteriskQueue, r.RingGroup, r.Extension, r.DID, r.Context} {
		if v != "" {
			return RouteKeys[i], v
		}
	}
	return "", ""
}

// Matcher returns the route's test of a value of its match key. Call it on a validated
// configuration only: an invalid pattern matches nothing.
func (r Route) Matcher() func(string) bool {
	key, value := r.Match()
	switch key {
	case "ring_group":
		want := NormalizeDialString(value)
		return func(s string) bool { return s != "" && NormalizeDialString(s) == want }
	case "extension", "did":
		if strings.HasPrefix(value, "_") {
			re, err := DialplanPattern(value)
			if err != nil {
				return func(string) bool { return false }
			}
			return re.MatchString
		}
	case "":
		return func(string) bool { return false }
	}
	return func(s string) bool { return s == value }
}

// IsInternal reports whether ext looks like an internal extension. It is false until the
// config has been validated by Load or Parse, so an unchecked config never classifies calls.
func (c *Config) IsInternal(ext string) bool {
	return c.compiled != nil && c.compiled.internal.MatchString(ext)
}

// DetectorPatterns returns detector.internal_extension and detector.customer_number as
// validation compiled them, so the detector never compiles them again; both are nil until
// the config has been validated by Load or Parse.
func (c *Config) DetectorPatterns() (internal, customer *regexp.Regexp) {
	if c.compiled == nil {
		return nil, nil
	}
	return c.compiled.internal, c.compiled.customer
}

// IsCustomerNumber reports whether n looks like an external customer's number. False until the
// config has been validated by Load or Parse.
func (c *Config) IsCustomerNumber(n string) bool {
	return c.compiled != nil && c.compiled.customer.MatchString(n)
}

// Queue is one callback queue: which promises it makes and how hard it tries to keep them.
type Queue struct {
	Name         string       `yaml:"name"`
	Deadline     Deadlines    `yaml:"deadline"`
	MaxAttempts  int          `yaml:"max_attempts"`
	RetryBackoff Duration     `yaml:"retry_backoff"`
	CallingHours CallingHours `yaml:"calling_hours"`
	// DeadlineClock says how Deadline is measured: in open hours (business) or wall time.
	DeadlineClock   string  `yaml:"deadline_clock"`
	OwnerPreference float64 `yaml:"owner_preference"`
	// Greeting is played to the customer on answer, before the agent is heard; empty: none.
	Greeting []string `yaml:"greeting"`
	// ConfirmDigit, when set, must be pressed by the customer after the greeting: a customer's
	// own voicemail never presses it, so it never counts as a kept promise.
	ConfirmDigit   string   `yaml:"confirm_digit"`
	ConfirmTimeout Duration `yaml:"confirm_timeout"`
	// Resolve says who the customer must reach, calling in again, for the open promise to be
	// closed as resolved: the target they were to be called back about (ResolveTarget), or
	// anyone who serves this queue (ResolveQueue).
	Resolve string `yaml:"resolve"`
	// PromisePer says whether a customer owed callbacks here and in another queue gets one
	// promise (PromisePerCustomer) or one per queue (PromisePerQueue).
	PromisePer string `yaml:"promise_per"`
	// MaxOpenAge is how long a promise may stay open before it ends expired: a customer is not
	// rung about a call of weeks ago, and what is stored about them does not wait for ever.
	MaxOpenAge Duration `yaml:"max_open_age"`
}

// Deadlines is the promised time-to-callback per reason a promise was made.
type Deadlines struct {
	Voicemail          Duration `yaml:"voicemail"`
	UnansweredTransfer Duration `yaml:"unanswered_transfer"`
	Offer              Duration `yaml:"offer"`
	API                Duration `yaml:"api"`
}

// For returns the deadline promised for reason, and false for an unknown reason. The YAML
// keys of Deadlines are the reasons' own spellings.
func (d Deadlines) For(reason queue.Reason) (time.Duration, bool) {
	switch reason {
	case queue.ReasonVoicemail:
		return d.Voicemail.D(), true
	case queue.ReasonUnansweredTransfer:
		return d.UnansweredTransfer.D(), true
	case queue.ReasonOffer:
		return d.Offer.D(), true
	case queue.ReasonAPI:
		return d.API.D(), true
	}
	return 0, false
}

// CallingHours is when customers of a queue may be rung, in the queue's own time zone, and
// the business time its deadlines are measured in. Days/Start/End is the one-range-a-day
// form of earlier versions; Week (the key open) replaces it with several ranges a day.
type CallingHours struct {
	Timezone string      `yaml:"timezone"`
	Days     []string    `yaml:"days"`
	Start    string      `yaml:"start"`
	End      string      `yaml:"end"`
	Week     []OpenHours `yaml:"open"`
	// Closed are dates, date ranges and time ranges the queue is closed whatever the week says.
	Closed []string `yaml:"closed"`
	// Holidays is a country code (NL, BE) whose public holidays are closed; "" for none.
	Holidays string `yaml:"holidays"`
}

// Agent is a person who makes callbacks from one endpoint.
type Agent struct {
	ID        string   `yaml:"id"`
	Name      string   `yaml:"name"`
	Endpoint  string   `yaml:"endpoint"`
	Queues    []string `yaml:"queues"`
	Extension string   `yaml:"extension"`
	// Shifts is when the agent works, in the time zone of their first queue; none: always.
	Shifts Shifts `yaml:"shifts"`
}

// Serves reports whether the agent takes callbacks for queue; an empty list means all queues.
func (a Agent) Serves(queue string) bool {
	if len(a.Queues) == 0 {
		return true
	}
	for _, q := range a.Queues {
		if q == queue {
			return true
		}
	}
	return false
}

// Dialer configures how callbacks are placed.
type Dialer struct {
	CustomerDialTemplate string     `yaml:"customer_dial_template"`
	CallerID             CallerID   `yaml:"caller_id"`
	Allow                Allow      `yaml:"allow"`
	RateLimits           RateLimits `yaml:"rate_limits"`
	AgentRingTimeout     Duration   `yaml:"agent_ring_timeout"`
	CustomerRingTimeout  Duration   `yaml:"customer_ring_timeout"`
	AgentCooldown        Duration   `yaml:"agent_cooldown"`
	WrapUp               Duration   `yaml:"wrap_up"`
	Lease                Duration   `yaml:"lease"`
	// Whisper is played to the agent on answer, before the customer is dialled. Items are ARI
	// media URIs with placeholders: {number} (the customer's digits), {name}, {reason},
	// {target}, {hour} and {minute} of the deadline in the queue's time zone.
	Whisper []string `yaml:"whisper"`
	// ShutdownGrace is how long SIGTERM waits for calls in progress before hanging them up.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
}

// Metrics configures the Prometheus metrics.
type Metrics struct {
	// KeptRatioWindow is the window of callbackd_promise_kept_ratio.
	KeptRatioWindow Duration `yaml:"kept_ratio_window"`
}

// Whisper placeholders, replaced per promise.
var WhisperPlaceholders = []string{"{number}", "{name}", "{reason}", "{target}", "{hour}", "{minute}"}

// MediaSchemes are the ARI media URI schemes a configured media list may use.
var MediaSchemes = []string{"sound", "recording", "number", "digits", "characters", "tone"}

// CallerID is what the customer sees when called back.
type CallerID struct {
	Number string `yaml:"number"`
	Name   string `yaml:"name"`
}

// NumberPlaceholder is replaced by the customer's number in Dialer.CustomerDialTemplate.
const NumberPlaceholder = "{number}"

// CustomerDialString turns the dial template into the Asterisk endpoint for number.
func (d Dialer) CustomerDialString(number string) string {
	return strings.ReplaceAll(d.CustomerDialTemplate, NumberPlaceholder, number)
}

// HTTP is the admin/metrics listener.
type HTTP struct {
	Listen string `yaml:"listen"`
	// Token is one bearer token with every role (read, write and pii), as before roles existed.
	Token Secret `yaml:"token"`
	// Tokens are bearer tokens with roles, one per client (a CRM, the supervisor page), so a
	// client is given only what it needs and one can be revoked alone.
	Tokens []HTTPToken `yaml:"tokens"`
}

// HTTPToken is one entry of http.tokens.
type HTTPToken struct {
	// Name says whose token it is, in logs and idempotency scopes; never the token itself.
	Name  string `yaml:"name"`
	Token Secret `yaml:"token"`
	Roles []Role `yaml:"roles"`
}

// Role is what a bearer token allows.
type Role string

// The roles of http.tokens.
const (
	RoleRead  Role = "read"  // read promises, queues, agents and the event stream
	RoleWrite Role = "write" // make, cancel and reschedule promises, set agents' presence, erase customers
	RolePII   Role = "pii"   // see customers' numbers unmasked and export a customer's records
)

// Roles lists every role.
func Roles() []Role { return []Role{RoleRead, RoleWrite, RolePII} }

// Log configures logging.
type Log struct {
	Level       string `yaml:"level"`
	Format      string `yaml:"format"`
	MaskNumbers bool   `yaml:"mask_numbers"`
}

// Queue returns the queue called name.
func (c *Config) Queue(name string) (Queue, bool) {
	for _, q := range c.Queues {
		if q.Name == name {
			return q, true
		}
	}
	return Queue{}, false
}

// Location returns the time zone of the queue's calling hours.
func (h CallingHours) Location() (*time.Location, error) {
	return time.LoadLocation(h.Timezone)
}

// Open reports whether t falls inside the calling hours, evaluated in their time zone. Invalid
// calling hours (which validation rejects) are never open, so a bad config never rings anyone.
// The engine uses the compiled Calendar; this is for callers holding only the config.
func (h CallingHours) Open(t time.Time) bool {
	c, err := h.Calendar()
	return err == nil && c.Open(t)
}

// NextOpening is when the calling hours next open after t (t itself when open); zero when
// they never open.
func (h CallingHours) NextOpening(t time.Time) time.Time {
	c, err := h.Calendar()
	if err != nil {
		return time.Time{}
	}
	return c.NextOpening(t)
}

// compiledRefs keeps the regexps that validation compiled, so callers never recompile or
// handle errors validation already reported.
type compiledRefs struct {
	internal *regexp.Regexp
	customer *regexp.Regexp
	dial     *dialGuard
}

// Defaults documented in the example file and the reference.
const (
	DefaultRedisAddr = "127.0.0.1:6379"
)

// Default returns the configuration used for every key the file and the environment leave out.
// It has no Asterisk connections and no queues, so it is not valid on its own.
func Default() *Config {
	return &Config{
		Redis: Redis{
			Addr:        DefaultRedisAddr,
			KeyPrefix:   "callbackd",
			DialTimeout: Duration(5 * time.Second),
			WaitTimeout: Duration(100 * time.Millisecond),
		},
		Detector: Detector{
			InternalExtension:  `^[0-9]{2,6}$`,
			CustomerNumber:     `^(\+[0-9]{6,15}|[0-9]{7,15})$`,
			DefaultCountry:     DefaultCountry,
			DefaultCountryCode: "31",
		},
		Dialer: Dialer{
			Allow:               Allow{Countries: []string{DefaultCountry}, Types: slices.Clone(DefaultAllowTypes)},
			RateLimits:          DefaultRateLimits(),
			AgentRingTimeout:    Duration(20 * time.Second),
			CustomerRingTimeout: Duration(30 * time.Second),
			AgentCooldown:       Duration(2 * time.Minute),
			WrapUp:              Duration(30 * time.Second),
			Lease:               Duration(60 * time.Second),
			Whisper: []string{"sound:callbackd-callback-for", "digits:{number}", "sound:callbackd-reason-{reason}",
				"sound:callbackd-promised-before", "number:{hour}", "number:{minute}"},
			ShutdownGrace: Duration(30 * time.Second),
		},
		Metrics:   Metrics{KeptRatioWindow: Duration(24 * time.Hour)},
		HTTP:      HTTP{Listen: "127.0.0.1:9464"},
		Log:       Log{Level: "info", Format: "json", MaskNumbers: true},
		Retention: Duration(720 * time.Hour),
	}
}

// DefaultAsterisk is what every entry of the asterisk list starts from.
func DefaultAsterisk() Asterisk {
	return Asterisk{
		MonitorApp:     "callbackd-monitor",
		ControlApp:     "callbackd",
		RequestTimeout: Duration(5 * time.Second),
		Reconnect:      Backoff{Initial: Duration(500 * time.Millisecond), Max: Duration(30 * time.Second)},
	}
}

// DefaultQueue is what every entry of the queues list starts from.
func DefaultQueue() Queue {
	return Queue{
		Deadline: Deadlines{
			Voicemail:          Duration(4 * time.Hour),
			UnansweredTransfer: Duration(2 * time.Hour),
			Offer:              Duration(1 * time.Hour),
			API:                Duration(4 * time.Hour),
		},
		MaxAttempts:  3,
		RetryBackoff: Duration(10 * time.Minute),
		CallingHours: CallingHours{
			Timezone: "Europe/Amsterdam",
			Days:     []string{"mon", "tue", "wed", "thu", "fri"},
			Start:    "08:30",
			End:      "17:30",
		},
		DeadlineClock:   DeadlineBusiness,
		Resolve:         ResolveTarget,
		PromisePer:      PromisePerCustomer,
		OwnerPreference: 0.5,
		ConfirmTimeout:  Duration(10 * time.Second),
		// Two weeks outlasts the longest default deadline on a business clock across a
		// Christmas closure, and is still far inside the default retention.
		MaxOpenAge: Duration(14 * 24 * time.Hour),
	}
}
