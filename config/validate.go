package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/internal/stasisapp"
)

var (
	nameRE         = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	endpointRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*/\S+$`)
	digitsRE       = regexp.MustCompile(`^[0-9]{1,3}$`)
	callerDigitsRE = regexp.MustCompile(`^[0-9]{3,15}$`)
	confirmDigitRE = regexp.MustCompile(`^[0-9*#]$`)
	placeholderRE  = regexp.MustCompile(`\{[^{}]*\}`)
	weekdays       = map[string]bool{"mon": true, "tue": true, "wed": true, "thu": true, "fri": true, "sat": true, "sun": true}
)

// validator collects problems; it never stops at the first so one run of `config check`
// shows the administrator everything to fix.
type validator struct {
	where    map[string]string
	problems []Problem
	use      Use
}

// addf records a problem at path, pointing at where its value (or, for a missing key, its
// nearest enclosing key) came from.
func (v *validator) addf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...), Where: v.locate(path)})
}

func (v *validator) locate(path string) string {
	for path != "" {
		if w, ok := v.where[path]; ok {
			return w
		}
		if strings.HasSuffix(path, "]") {
			path = path[:strings.LastIndex(path, "[")]
		} else if i := strings.LastIndex(path, "."); i >= 0 {
			path = path[:i]
		} else {
			return ""
		}
	}
	return ""
}

func (v *validator) set(path string) bool {
	_, ok := v.where[path]
	return ok
}

// normalize fills defaults that depend on other keys.
func (v *validator) normalize(c *Config) {
	// The built-in Redis address is a default, not a choice: it must not collide with a URL,
	// Sentinel or Cluster the administrator configured.
	if !v.set("redis.addr") && (c.Redis.URL != "" || c.Redis.Sentinel.MasterName != "" ||
		len(c.Redis.Sentinel.Addrs) > 0 || len(c.Redis.Cluster.Addrs) > 0) {
		c.Redis.Addr = ""
	}
	for i := range c.Queues {
		// The legacy days/start/end have defaults; they give way to an explicit open list.
		h, p := &c.Queues[i].CallingHours, fmt.Sprintf("queues[%d].calling_hours", i)
		if len(h.Week) > 0 {
			if !v.set(p + ".days") {
				h.Days = nil
			}
			if !v.set(p + ".start") {
				h.Start = ""
			}
			if !v.set(p + ".end") {
				h.End = ""
			}
		}
	}
	v.normalizeNumbers(c)
	if c.Detector.DefaultQueue == "" && len(c.Queues) > 0 {
		c.Detector.DefaultQueue = c.Queues[0].Name
	}
}

func (v *validator) config(c *Config) {
	v.redis(c.Redis)
	v.instanceID(c.InstanceID)
	v.asterisk(c.Asterisk)
	v.appNames(c.Asterisk, c.InstanceID)
	queues := v.queues(c.Queues)
	refs := &compiledRefs{}
	v.detector(c.Detector, queues, refs)
	v.agents(c.Agents, queues, refs.internal)
	v.dialer(c.Dialer, len(c.Agents) > 0, refs)
	v.numbers(c, refs)
	v.rateLimits(c.Dialer.RateLimits)
	v.http(c.HTTP)
	v.log(c.Log)
	v.webhooks(c.Webhooks)
	v.positive("retention", c.Retention)
	v.positive("metrics.kept_ratio_window", c.Metrics.KeptRatioWindow)
	if c.Metrics.KeptRatioWindow > c.Retention && c.Retention > 0 {
		v.addf("metrics.kept_ratio_window", "must not be longer than retention (%s): older outcomes are forgotten", c.Retention)
	}
	if len(v.problems) == 0 {
		c.compiled = refs
	}
}

func (v *validator) positive(path string, d Duration) {
	if d <= 0 {
		v.addf(path, "must be > 0")
	}
}

func (v *validator) required(path, value string) bool {
	if strings.TrimSpace(value) == "" {
		v.addf(path, "required")
		return false
	}
	return true
}

// hostPort checks a host:port address and reports the problem at path.
func (v *validator) hostPort(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.addf(path, "invalid address %q: want host:port", addr)
		return
	}
	if strings.ContainsAny(host, " \t") {
		v.addf(path, "invalid address %q: host contains whitespace", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.addf(path, "invalid address %q: port must be a number from 1 to 65535", addr)
	}
}

func (v *validator) redis(r Redis) {
	var modes []string
	if r.Addr != "" {
		modes = append(modes, "addr")
	}
	if r.URL != "" {
		modes = append(modes, "url")
	}
	if r.Sentinel.MasterName != "" || len(r.Sentinel.Addrs) > 0 {
		modes = append(modes, "sentinel")
	}
	if len(r.Cluster.Addrs) > 0 {
		modes = append(modes, "cluster")
	}
	switch {
	case len(modes) == 0:
		v.addf("redis", "one of addr, url, sentinel or cluster is required")
	case len(modes) > 1:
		v.addf("redis", "%s are mutually exclusive; configure only one", strings.Join(modes, " and "))
	}
	if r.Addr != "" {
		v.hostPort("redis.addr", r.Addr)
	}
	if r.URL != "" {
		u, err := url.Parse(r.URL.Reveal())
		switch {
		case err != nil:
			v.addf("redis.url", "%s", urlProblem(r.URL, err))
		case u.Scheme != "redis" && u.Scheme != "rediss":
			v.addf("redis.url", "scheme must be redis:// or rediss://, got %q", u.Scheme)
		case u.Host == "":
			v.addf("redis.url", "missing host")
		}
		// The URL carries its own credentials and database; separate keys would be ignored,
		// and a password that silently does nothing is worse than an error.
		for _, k := range []struct {
			key string
			set bool
		}{{"redis.username", r.Username != ""}, {"redis.password", r.Password != ""}, {"redis.db", r.DB != 0}} {
			if k.set {
				v.addf(k.key, "not used with redis.url; put it in the URL (redis://user:password@host:port/db)")
			}
		}
	}
	if r.Sentinel.MasterName != "" || len(r.Sentinel.Addrs) > 0 {
		v.required("redis.sentinel.master_name", r.Sentinel.MasterName)
		if len(r.Sentinel.Addrs) == 0 {
			v.addf("redis.sentinel.addrs", "at least one sentinel address is required")
		}
		for i, a := range r.Sentinel.Addrs {
			v.hostPort(fmt.Sprintf("redis.sentinel.addrs[%d]", i), a)
		}
	}
	for i, a := range r.Cluster.Addrs {
		v.hostPort(fmt.Sprintf("redis.cluster.addrs[%d]", i), a)
	}
	switch {
	case r.DB < 0:
		v.addf("redis.db", "must be >= 0")
	case r.DB != 0 && len(r.Cluster.Addrs) > 0:
		v.addf("redis.db", "must be 0 with Redis Cluster (a cluster has only database 0)")
	}
	switch {
	case r.KeyPrefix == "":
		v.addf("redis.key_prefix", "required")
	case strings.ContainsAny(r.KeyPrefix, "{}"):
		v.addf("redis.key_prefix", "must not contain { or } (they are Redis Cluster hash tags)")
	case strings.ContainsAny(r.KeyPrefix, " \t\r\n"):
		v.addf("redis.key_prefix", "must not contain whitespace")
	}
	v.positive("redis.dial_timeout", r.DialTimeout)
	if r.WaitReplicas < 0 {
		v.addf("redis.wait_replicas", "must be >= 0")
	}
	// WAIT counts in milliseconds and 0 would wait for ever; past 2s go-redis' read timeout
	// (3s) fails the write that is waiting.
	if r.WaitTimeout < Duration(time.Millisecond) || r.WaitTimeout > Duration(2*time.Second) {
		v.addf("redis.wait_timeout", "must be from 1ms to 2s")
	}
}

// urlProblem describes why u does not parse without echoing a password that may be in it.
func urlProblem(u SecretURL, err error) string {
	if strings.Contains(u.Reveal(), "@") {
		return "invalid URL (details withheld: it contains credentials)"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return "invalid URL: " + err.Error()
}

func (v *validator) asterisk(list []Asterisk) {
	if len(list) == 0 {
		v.addf("asterisk", "at least one Asterisk connection is required")
	}
	names := map[string]int{}
	for i, a := range list {
		p := fmt.Sprintf("asterisk[%d]", i)
		if v.required(p+".name", a.Name) {
			if !nameRE.MatchString(a.Name) {
				v.addf(p+".name", "must match %s", nameRE)
			} else if j, dup := names[a.Name]; dup {
				v.addf(p+".name", "duplicate name %q (also asterisk[%d])", a.Name, j)
			} else {
				names[a.Name] = i
			}
		}
		if v.required(p+".url", a.URL.Reveal()) {
			u, err := url.Parse(a.URL.Reveal())
			switch {
			case err != nil:
				v.addf(p+".url", "%s", urlProblem(a.URL, err))
			case u.Scheme != "http" && u.Scheme != "https":
				v.addf(p+".url", "scheme must be http:// or https:// (the ARI base URL, e.g. http://127.0.0.1:8088/ari), got %q", u.Scheme)
			case u.Host == "":
				v.addf(p+".url", "missing host")
			case u.User != nil:
				v.addf(p+".url", "must not contain credentials; use username and password")
			}
		}
		if v.use != UseOffline {
			v.required(p+".username", a.Username)
			v.required(p+".password", a.Password.Reveal())
		}
		monitorOK := v.required(p+".monitor_app", a.MonitorApp)
		controlOK := v.required(p+".control_app", a.ControlApp)
		if monitorOK && controlOK && a.MonitorApp == a.ControlApp {
			// Blame the key the administrator wrote; the other one is probably the default.
			key, other := ".control_app", "monitor_app"
			if !v.set(p+key) && v.set(p+".monitor_app") {
				key, other = ".monitor_app", "control_app"
			}
			v.addf(p+key, "must differ from %s (both %q): watching calls and controlling callbacks need separate Stasis applications", other, a.MonitorApp)
		}
		v.positive(p+".request_timeout", a.RequestTimeout)
		v.positive(p+".reconnect.initial", a.Reconnect.Initial)
		v.positive(p+".reconnect.max", a.Reconnect.Max)
		if a.Reconnect.Initial > 0 && a.Reconnect.Max > 0 && a.Reconnect.Initial > a.Reconnect.Max {
			v.addf(p+".reconnect.initial", "must be <= reconnect.max (%s)", a.Reconnect.Max)
		}
	}
}

// instanceID checks the instance id, when one is set.
func (v *validator) instanceID(id string) {
	if id == "" {
		return
	}
	if err := stasisapp.CheckInstanceID(id); err != nil {
		v.addf("instance_id", "%v", err)
	}
}

// appNames checks each Asterisk's application names as the daemon registers them: with the
// instance id appended, or, while it is to be derived from the host name, with room for the
// longest one that can be.
func (v *validator) appNames(list []Asterisk, id string) {
	suffix := id
	switch {
	case id == "":
		suffix = strings.Repeat("x", stasisapp.MaxInstanceIDLen)
	case stasisapp.CheckInstanceID(id) != nil:
		suffix = "" // reported at instance_id; the names are checked as configured
	}
	for i, a := range list {
		p := fmt.Sprintf("asterisk[%d]", i)
		monitor, control := stasisapp.Names(a.MonitorApp, a.ControlApp, suffix)
		for _, n := range []struct{ key, base, name string }{{".monitor_app", a.MonitorApp, monitor}, {".control_app", a.ControlApp, control}} {
			if strings.TrimSpace(n.base) == "" {
				continue // reported as required
			}
			if err := stasisapp.Check(n.base); err != nil {
				v.addf(p+n.key, "%v", err)
				continue
			}
			if err := stasisapp.Check(n.name); err != nil && suffix != "" {
				if id == "" {
					v.addf(p+n.key, "too long: with an instance id derived from the host name (up to %d characters) the name can reach %d characters, and Asterisk takes at most %d; shorten it or set instance_id",
						stasisapp.MaxInstanceIDLen, len(n.name), stasisapp.MaxNameLen)
				} else {
					v.addf(p+n.key, "with instance_id %q: %v", id, err)
				}
			}
		}
	}
}

// queues validates the queue list and returns the valid queue names.
func (v *validator) queues(list []Queue) map[string]bool {
	if len(list) == 0 {
		v.addf("queues", "at least one queue is required")
	}
	names := map[string]bool{}
	first := map[string]int{}
	for i, q := range list {
		p := fmt.Sprintf("queues[%d]", i)
		switch {
		case q.Name == "":
			v.addf(p+".name", "required")
		case strings.ContainsAny(q.Name, "{}"):
			v.addf(p+".name", "must not contain { or } (they are Redis Cluster hash tags)")
		case !nameRE.MatchString(q.Name):
			v.addf(p+".name", "must be 1 to 64 letters, digits, '_', '.' or '-'")
		default:
			if j, dup := first[q.Name]; dup {
				v.addf(p+".name", "duplicate queue name %q (also queues[%d])", q.Name, j)
			} else {
				first[q.Name] = i
				names[q.Name] = true
			}
		}
		v.positive(p+".deadline.voicemail", q.Deadline.Voicemail)
		v.positive(p+".deadline.unanswered_transfer", q.Deadline.UnansweredTransfer)
		v.positive(p+".deadline.offer", q.Deadline.Offer)
		v.positive(p+".deadline.api", q.Deadline.API)
		if q.MaxAttempts < 1 {
			v.addf(p+".max_attempts", "must be >= 1")
		}
		v.positive(p+".retry_backoff", q.RetryBackoff)
		v.callingHours(p+".calling_hours", q.CallingHours)
		v.deadlineClock(p+".deadline_clock", q.DeadlineClock)
		if q.PromisePer != PromisePerCustomer && q.PromisePer != PromisePerQueue {
			v.addf(p+".promise_per", "must be %s or %s, got %q", PromisePerCustomer, PromisePerQueue, q.PromisePer)
		}
		if q.Resolve != ResolveTarget && q.Resolve != ResolveQueue {
			v.addf(p+".resolve", "must be %s or %s, got %q", ResolveTarget, ResolveQueue, q.Resolve)
		}
		if !(q.OwnerPreference >= 0 && q.OwnerPreference <= 1) { // NaN too
			v.addf(p+".owner_preference", "must be between 0 and 1 (a share of the time to the deadline)")
		}
		v.media(p+".greeting", q.Greeting, nil)
		if q.ConfirmDigit != "" && !confirmDigitRE.MatchString(q.ConfirmDigit) {
			v.addf(p+".confirm_digit", "must be one key: 0-9, * or #, got %q", q.ConfirmDigit)
		}
		if q.ConfirmDigit != "" {
			v.positive(p+".confirm_timeout", q.ConfirmTimeout)
		}
		v.maxOpenAge(p, q)
	}
	return names
}

// maxOpenAge checks that a promise can reach its deadline before it expires. A deadline on a
// business clock lasts longer than its duration in wall time, so this is the least it takes.
func (v *validator) maxOpenAge(p string, q Queue) {
	if q.MaxOpenAge <= 0 {
		v.addf(p+".max_open_age", "must be > 0: every open promise needs an end (e.g. 336h)")
		return
	}
	longest, key := Duration(0), ""
	for _, d := range []struct {
		key string
		d   Duration
	}{{"voicemail", q.Deadline.Voicemail}, {"unanswered_transfer", q.Deadline.UnansweredTransfer},
		{"offer", q.Deadline.Offer}, {"api", q.Deadline.API}} {
		if d.d > longest {
			longest, key = d.d, d.key
		}
	}
	if q.MaxOpenAge <= longest {
		v.addf(p+".max_open_age", "must be longer than the queue's longest deadline (deadline.%s: %s), or promises expire before they are due",
			key, longest)
	}
}

func (v *validator) callingHours(p string, h CallingHours) {
	if v.required(p+".timezone", h.Timezone) {
		if _, err := time.LoadLocation(h.Timezone); err != nil {
			v.addf(p+".timezone", "unknown time zone %q (use an IANA name such as Europe/Amsterdam)", h.Timezone)
		}
	}
	if !v.businessTime(p, h) {
		return
	}
	if len(h.Days) == 0 {
		v.addf(p+".days", "at least one day is required")
	}
	seen := map[string]bool{}
	for i, d := range h.Days {
		dp := fmt.Sprintf("%s.days[%d]", p, i)
		switch {
		case !weekdays[d]:
			v.addf(dp, "unknown day %q (use mon, tue, wed, thu, fri, sat, sun)", d)
		case seen[d]:
			v.addf(dp, "duplicate day %q", d)
		}
		seen[d] = true
	}
	start, errS := parseClock(h.Start)
	if errS != nil {
		v.addf(p+".start", "%v", errS)
	}
	end, errE := parseClock(h.End)
	if errE != nil {
		v.addf(p+".end", "%v", errE)
	}
	if errS == nil && errE == nil && start >= end {
		v.addf(p+".end", "must be after start (%s)", h.Start)
	}
}

func (v *validator) regexp(path, expr string) *regexp.Regexp {
	re, err := regexp.Compile(expr)
	if err != nil {
		v.addf(path, "invalid regexp %q: %s", expr, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return nil
	}
	return re
}

func (v *validator) detector(d Detector, queues map[string]bool, refs *compiledRefs) {
	for i, ctx := range d.InboundContexts {
		if strings.TrimSpace(ctx) == "" {
			v.addf(fmt.Sprintf("detector.inbound_contexts[%d]", i), "must not be empty")
		}
	}
	if v.required("detector.internal_extension", d.InternalExtension) {
		refs.internal = v.regexp("detector.internal_extension", d.InternalExtension)
	}
	if v.required("detector.customer_number", d.CustomerNumber) {
		refs.customer = v.regexp("detector.customer_number", d.CustomerNumber)
	}
	if d.DefaultQueue != "" && len(queues) > 0 && !queues[d.DefaultQueue] {
		v.addf("detector.default_queue", "unknown queue %q", d.DefaultQueue)
	}
	v.routes(d.Routes, queues)
}

func (v *validator) agents(list []Agent, queues map[string]bool, internal *regexp.Regexp) {
	ids := map[string]int{}
	exts := map[string]int{}
	endpoints := map[string]int{}
	for i, a := range list {
		p := fmt.Sprintf("agents[%d]", i)
		if v.required(p+".id", a.ID) {
			if j, dup := ids[a.ID]; dup {
				v.addf(p+".id", "duplicate agent id %q (also agents[%d])", a.ID, j)
			} else {
				ids[a.ID] = i
			}
		}
		if v.required(p+".endpoint", a.Endpoint) {
			if !endpointRE.MatchString(a.Endpoint) {
				v.addf(p+".endpoint", "must be TECH/resource, e.g. PJSIP/1001, got %q", a.Endpoint)
			} else if j, dup := endpoints[a.Endpoint]; dup {
				// One phone cannot be two free agents; the dispatcher would ring it twice.
				v.addf(p+".endpoint", "endpoint %q already belongs to agents[%d]", a.Endpoint, j)
			} else {
				endpoints[a.Endpoint] = i
			}
		}
		v.shifts(p+".shifts", a.Shifts)
		for j, q := range a.Queues {
			if !queues[q] {
				v.addf(fmt.Sprintf("%s.queues[%d]", p, j), "unknown queue %q", q)
			}
		}
		if a.Extension != "" {
			if internal != nil && !internal.MatchString(a.Extension) {
				v.addf(p+".extension", "%q does not match detector.internal_extension", a.Extension)
			}
			if j, dup := exts[a.Extension]; dup {
				v.addf(p+".extension", "extension %q already belongs to agents[%d]", a.Extension, j)
			} else {
				exts[a.Extension] = i
			}
		}
	}
}

func (v *validator) dialer(d Dialer, haveAgents bool, refs *compiledRefs) {
	t := d.CustomerDialTemplate
	switch {
	case t == "" && haveAgents:
		v.addf("dialer.customer_dial_template", "required when agents are configured (e.g. PJSIP/{number}@provider)")
	case t == "":
	case !strings.Contains(t, NumberPlaceholder):
		v.addf("dialer.customer_dial_template", "must contain {number} (e.g. PJSIP/{number}@provider), got %q", t)
	case !endpointRE.MatchString(d.CustomerDialString("0")):
		v.addf("dialer.customer_dial_template", "must be TECH/resource (e.g. PJSIP/{number}@provider), got %q", t)
	}
	switch {
	case d.CallerID.Number == "" && haveAgents:
		v.addf("dialer.caller_id.number", "required when agents are configured: customers must see who is calling back")
	case d.CallerID.Number == "":
	default:
		// Some trunks want the national form, so plain digits are accepted beside E.164.
		if _, err := phone.ParseE164(d.CallerID.Number); err != nil && !callerDigitsRE.MatchString(d.CallerID.Number) {
			v.addf("dialer.caller_id.number", "must be an E.164 number such as +31201234567 or plain digits, got %q", d.CallerID.Number)
		}
	}
	if strings.ContainsAny(d.CallerID.Name, "\"<>\r\n") {
		v.addf("dialer.caller_id.name", "must not contain quotes, < > or line breaks")
	}
	v.positive("dialer.agent_ring_timeout", d.AgentRingTimeout)
	v.positive("dialer.customer_ring_timeout", d.CustomerRingTimeout)
	if d.AgentCooldown < 0 {
		v.addf("dialer.agent_cooldown", "must be >= 0")
	}
	if d.WrapUp < 0 {
		v.addf("dialer.wrap_up", "must be >= 0")
	}
	v.positive("dialer.lease", d.Lease)
	v.media("dialer.whisper", d.Whisper, WhisperPlaceholders)
	if d.ShutdownGrace < 0 {
		v.addf("dialer.shutdown_grace", "must be >= 0")
	}
}

// media checks a list of ARI media URIs; placeholders lists the {...} names allowed in values.
func (v *validator) media(path string, list []string, placeholders []string) {
	for i, m := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		scheme, value, ok := strings.Cut(m, ":")
		if !ok || value == "" || !slices.Contains(MediaSchemes, scheme) {
			v.addf(p, "must be a media URI such as sound:NAME or digits:123 (schemes %s), got %q",
				strings.Join(MediaSchemes, ", "), m)
			continue
		}
		if strings.ContainsAny(value, ", \t\r\n") {
			v.addf(p, "must not contain commas or spaces, got %q", m)
			continue
		}
		for _, ph := range placeholderRE.FindAllString(value, -1) {
			if !slices.Contains(placeholders, ph) {
				if len(placeholders) == 0 {
					v.addf(p, "placeholder %s is not allowed here", ph)
				} else {
					v.addf(p, "unknown placeholder %s (known: %s)", ph, strings.Join(placeholders, " "))
				}
			}
		}
	}
}

func (v *validator) http(h HTTP) {
	if !v.required("http.listen", h.Listen) {
		return
	}
	host, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		v.addf("http.listen", "invalid address %q: want host:port", h.Listen)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.addf("http.listen", "invalid address %q: port must be a number from 0 to 65535", h.Listen)
		return
	}
	if !isLoopback(host) && h.Token == "" && len(h.Tokens) == 0 {
		v.addf("http.token", "required when http.listen (%s) is not a loopback address", h.Listen)
	}
	v.httpTokens(h)
	if n := len(h.Token.Reveal()); n > 0 && n < MinTokenBytes {
		// A short token can be guessed over the network; the length alone is said, never the token.
		v.addf("http.token", "must be at least %d bytes, got %d (e.g. openssl rand -hex 16)", MinTokenBytes, n)
	}
}

// httpTokens checks http.tokens: each named once, long enough, distinct from every other
// token (a token must say who it is), with known roles.
func (v *validator) httpTokens(h HTTP) {
	names, secrets := map[string]int{}, map[string]int{}
	if h.Token != "" {
		secrets[h.Token.Reveal()] = -1
	}
	for i, t := range h.Tokens {
		p := fmt.Sprintf("http.tokens[%d]", i)
		if v.required(p+".name", t.Name) {
			if j, dup := names[t.Name]; dup {
				v.addf(p+".name", "%q is already the name of http.tokens[%d]", t.Name, j)
			}
			names[t.Name] = i
		}
		switch n := len(t.Token.Reveal()); {
		case n == 0:
			v.addf(p+".token", "required")
		case n < MinTokenBytes:
			v.addf(p+".token", "must be at least %d bytes, got %d (e.g. openssl rand -hex 16)", MinTokenBytes, n)
		default:
			if j, dup := secrets[t.Token.Reveal()]; dup {
				other := "http.token"
				if j >= 0 {
					other = fmt.Sprintf("http.tokens[%d]", j)
				}
				v.addf(p+".token", "is the same as %s: every client needs a token of its own", other)
			}
			secrets[t.Token.Reveal()] = i
		}
		if len(t.Roles) == 0 {
			v.addf(p+".roles", "required: one or more of %v", Roles())
		}
		for j, r := range t.Roles {
			if !slices.Contains(Roles(), r) {
				v.addf(fmt.Sprintf("%s.roles[%d]", p, j), "unknown role %q (known: %v)", r, Roles())
			}
		}
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) log(l Log) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.addf("log.level", "must be debug, info, warn or error, got %q", l.Level)
	}
	switch l.Format {
	case "json", "console":
	default:
		v.addf("log.format", "must be json or console, got %q", l.Format)
	}
}
