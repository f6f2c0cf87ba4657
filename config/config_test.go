package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/callbackd/callbackd/queue"
)

// load parses a testdata file with the given environment.
func load(t *testing.T, file string, env map[string]string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	return Parse(data, mapEnv(env))
}

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// mustLoad parses a file that must be valid.
func mustLoad(t *testing.T, file string, env map[string]string) *Config {
	t.Helper()
	c, err := load(t, file, env)
	if err != nil {
		t.Fatalf("%s: unexpected error:\n%v", file, err)
	}
	return c
}

// Each bad file is rejected with exactly these problems, in this order, and nothing else.
var badFiles = []struct {
	file string
	want []string
}{
	{
		file: "routes.bad.yml",
		want: []string{
			`detector.routes[0]: needs one of asterisk_queue, ring_group, extension, did, context: what the customer asked for (line 12)`,
			`detector.routes[1]: asterisk_queue and extension are mutually exclusive; a route matches one thing (write two routes) (line 13)`,
			`detector.routes[2].queue: required: the callback queue the promise goes to (line 16)`,
			`detector.routes[3].extension: invalid Asterisk pattern: pattern "_10[X": unclosed or empty [ at character 4 (line 17)`,
			`detector.routes[4].ring_group: must be Dial() destinations joined by & (e.g. PJSIP/1001&PJSIP/1002), got "PJSIP/1001,PJSIP/1002" (line 19)`,
			`detector.routes[5].did: must not contain spaces, got "+3120 5550206" (line 21)`,
			`detector.routes[5].queue: unknown queue "sale" (line 22)`,
			`detector.routes[6].asterisk_queue: matches the same "sales" as detector.routes[2], which comes first: this route is never used (line 23)`,
			`detector.routes[7].asterisk_queue: matches the same "sales" as detector.routes[2], which comes first: this route is never used (line 25)`,
			`detector.routes[9].ring_group: matches the same "pjsip/1001&PJSIP/1002" as detector.routes[8], which comes first: this route is never used (line 29)`,
		},
	},
	{
		file: "agent_unknown_queue.bad.yml",
		want: []string{
			`agents[0].queues[1]: unknown queue "sale" (line 11)`,
		},
	},
	{
		file: "redis_url_with_password.bad.yml",
		want: []string{
			`redis.password: not used with redis.url; put it in the URL (redis://user:password@host:port/db) (line 3)`,
			`redis.db: not used with redis.url; put it in the URL (redis://user:password@host:port/db) (line 4)`,
		},
	},
	{
		file: "media_lists.bad.yml",
		want: []string{
			`queues[0].greeting[1]: must be a media URI such as sound:NAME or digits:123 (schemes sound, recording, number, digits, characters, tone), got "play:this" (line 8)`,
			`queues[0].greeting[2]: placeholder {number} is not allowed here (line 8)`,
			`queues[0].confirm_digit: must be one key: 0-9, * or #, got "12" (line 9)`,
			`dialer.whisper[1]: unknown placeholder {numbr} (known: {number} {name} {reason} {target} {hour} {minute}) (line 11)`,
			`dialer.whisper[2]: must not contain commas or spaces, got "sound:a,b" (line 11)`,
			`metrics.kept_ratio_window: must not be longer than retention (720h): older outcomes are forgotten (line 13)`,
		},
	},
	{
		file: "agents_without_caller_id.bad.yml",
		want: []string{
			`agents[1].id: duplicate agent id "anna" (also agents[0]) (line 11)`,
			`agents[1].endpoint: must be TECH/resource, e.g. PJSIP/1001, got "1002" (line 12)`,
			`dialer.customer_dial_template: required when agents are configured (e.g. PJSIP/{number}@provider)`,
			`dialer.caller_id.number: required when agents are configured: customers must see who is calling back`,
		},
	},
	{
		file: "agents_dial_safety.bad.yml",
		want: []string{
			`agents[1].endpoint: endpoint "PJSIP/1001" already belongs to agents[0] (line 13)`,
			`dialer.allow: at least one pattern is required: no number could ever be called back (line 18)`,
		},
	},
	{
		file: "allow_bad_regexp.bad.yml",
		want: []string{
			"dialer.allow[1]: invalid regexp \"^\\\\+32[0-9\": missing closing ]: `[0-9` (line 11)",
		},
	},
	{
		file: "asterisk_url_not_http.bad.yml",
		want: []string{
			`asterisk[0].url: scheme must be http:// or https:// (the ARI base URL, e.g. http://127.0.0.1:8088/ari), got "ws" (line 3)`,
		},
	},
	{
		file: "bad_duration.bad.yml",
		want: []string{
			`queues[0].deadline.voicemail: invalid duration "4 hours" (use Go duration syntax such as 30s, 10m, 4h) (line 9)`,
		},
	},
	{
		file: "bad_timezone.bad.yml",
		want: []string{
			`queues[0].calling_hours.timezone: unknown time zone "Europe/Amsterdamm" (use an IANA name such as Europe/Amsterdam) (line 9)`,
		},
	},
	{
		file: "business_time.bad.yml",
		want: []string{
			`queues[0].calling_hours.closed[0]: invalid closure "2026-12-24..2026-12-23": it ends before it starts (line 16)`,
			`queues[0].calling_hours.closed[1]: invalid closure "kerst" (want YYYY-MM-DD, YYYY-MM-DD..YYYY-MM-DD or "YYYY-MM-DD HH:MM..YYYY-MM-DD HH:MM") (line 16)`,
			`queues[0].calling_hours.holidays: no public holidays known for "XX" (known: BE, NL) (line 17)`,
			`queues[0].calling_hours.start: not used with calling_hours.open; put the days and hours there (line 10)`,
			`queues[0].calling_hours.open[0].days[2]: unknown day "zon" (use mon, tue, wed, thu, fri, sat, sun) (line 12)`,
			`queues[0].calling_hours.open[0].hours[1]: 11:30-17:30 overlaps 08:30-12:00 on mon (queues[0].calling_hours.open[0].hours[0]) (line 13)`,
			`queues[0].calling_hours.open[1].hours[0]: invalid range "10:00" (want HH:MM-HH:MM, e.g. 08:30-12:00) (line 15)`,
			`queues[0].deadline_clock: must be business or wall, got "office" (line 8)`,
			`agents[0].shifts.week[0].hours[0]: invalid range "13:00-09:00": the end must be after the start (line 24)`,
			`agents[0].shifts.except[0].date: invalid date "2026-11-31" (want YYYY-MM-DD) (line 26)`,
			`agents[0].shifts.except[2].date: duplicate date 2026-12-01 (also except[1]) (line 29)`,
		},
	},
	{
		// A day named twice, and a closure that is one instant, each said for what it is.
		file: "calling_hours_repeats.bad.yml",
		want: []string{
			`queues[0].calling_hours.closed[0]: invalid closure "2026-12-24 10:00": a time of day needs an end too ("2026-12-24 10:00..YYYY-MM-DD HH:MM") (line 12)`,
			`queues[0].calling_hours.open[0].days[2]: duplicate day "mon" (line 10)`,
		},
	},
	{
		file: "calling_hours_end_before_start.bad.yml",
		want: []string{
			`queues[0].calling_hours.days[2]: unknown day "zon" (use mon, tue, wed, thu, fri, sat, sun) (line 9)`,
			`queues[0].calling_hours.end: must be after start (18:00) (line 11)`,
		},
	},
	{
		file: "resolve.bad.yml",
		want: []string{
			`queues[0].resolve: must be target or queue, got "team" (line 8)`,
			`queues[1].resolve: must be target or queue, got "" (line 10)`,
		},
	},
	{
		file: "deadline_zero.bad.yml",
		want: []string{
			`queues[1].deadline.voicemail: must be > 0 (line 10)`,
		},
	},
	{
		file: "max_open_age.bad.yml",
		want: []string{
			`queues[0].max_open_age: must be > 0: every open promise needs an end (e.g. 336h) (line 8)`,
			`queues[1].max_open_age: must be longer than the queue's longest deadline (deadline.voicemail: 48h), or promises expire before they are due (line 12)`,
			`queues[2].max_open_age: must be longer than the queue's longest deadline (deadline.voicemail: 4h), or promises expire before they are due (line 14)`,
		},
	},
	{
		file: "dial_template_no_number.bad.yml",
		want: []string{
			`dialer.customer_dial_template: must contain {number} (e.g. PJSIP/{number}@provider), got "PJSIP/provider" (line 12)`,
		},
	},
	{
		file: "duplicate_key.bad.yml",
		want: []string{
			`queues[0].name: duplicate key (line 8)`,
		},
	},
	{
		file: "duplicate_queue.bad.yml",
		want: []string{
			`queues[2].name: duplicate queue name "support" (also queues[0]) (line 9)`,
		},
	},
	{
		file: "empty.bad.yml",
		want: []string{
			`asterisk: at least one Asterisk connection is required`,
			`queues: at least one queue is required`,
		},
	},
	{
		file: "http_public_no_token.bad.yml",
		want: []string{
			`http.token: required when http.listen (0.0.0.0:9464) is not a loopback address (line 8)`,
		},
	},
	{
		file: "http_tokens.bad.yml",
		want: []string{
			`http.tokens[1].name: "crm" is already the name of http.tokens[0] (line 13)`,
			`http.tokens[1].token: must be at least 16 bytes, got 5 (e.g. openssl rand -hex 16) (line 13)`,
			`http.tokens[2].token: is the same as http.tokens[0]: every client needs a token of its own (line 14)`,
			`http.tokens[2].roles: required: one or more of [read write pii] (line 14)`,
			`http.tokens[3].token: is the same as http.token: every client needs a token of its own (line 15)`,
			`http.tokens[3].roles[0]: unknown role "admin" (known: [read write pii]) (line 15)`,
			`http.tokens[4].name: required (line 16)`,
		},
	},
	{
		file: "key_prefix_hash_tag.bad.yml",
		want: []string{
			`redis.key_prefix: must not contain { or } (they are Redis Cluster hash tags) (line 2)`,
		},
	},
	{
		file: "many_problems.bad.yml",
		want: []string{
			`redis: addr and url are mutually exclusive; configure only one (line 2)`,
			`redis.key_prefix: must not contain whitespace (line 5)`,
			`asterisk[0].url: scheme must be http:// or https:// (the ARI base URL, e.g. http://127.0.0.1:8088/ari), got "ftp" (line 8)`,
			`asterisk[0].username: required (line 7)`,
			`asterisk[0].password: required (line 7)`,
			`asterisk[0].control_app: must differ from monitor_app (both "cb"): watching calls and controlling callbacks need separate Stasis applications (line 10)`,
			`queues[0].deadline.offer: must be > 0 (line 14)`,
			`queues[0].max_attempts: must be >= 1 (line 15)`,
			`queues[1].name: duplicate queue name "support" (also queues[0]) (line 16)`,
			`queues[1].owner_preference: must be between 0 and 1 (a share of the time to the deadline) (line 17)`,
			`agents[0].queues[0]: unknown queue "nope" (line 21)`,
			`dialer.customer_dial_template: must contain {number} (e.g. PJSIP/{number}@provider), got "PJSIP/provider" (line 23)`,
			`http.token: required when http.listen (:9464) is not a loopback address (line 26)`,
			`log.level: must be debug, info, warn or error, got "verbose" (line 29)`,
			`retention: must be > 0 (line 30)`,
		},
	},
	{
		file: "queue_hash_tag.bad.yml",
		want: []string{
			`queues[0].name: must not contain { or } (they are Redis Cluster hash tags) (line 7)`,
		},
	},
	{
		file: "reconnect_window.bad.yml",
		want: []string{
			`asterisk[0].reconnect.initial: must be <= reconnect.max (10s) (line 7)`,
		},
	},
	{
		file: "redis_addr_and_url.bad.yml",
		want: []string{
			`redis: addr and url are mutually exclusive; configure only one (line 1)`,
		},
	},
	{
		file: "same_apps.bad.yml",
		want: []string{
			`asterisk[0].monitor_app: must differ from control_app (both "callbackd"): watching calls and controlling callbacks need separate Stasis applications (line 6)`,
		},
	},
	{
		file: "app_names.bad.yml",
		want: []string{
			`instance_id: instance id "web 1" contains " "; use only letters, digits, '_', '.' and '-' (line 1)`,
			`asterisk[0].monitor_app: application name "callbackd,monitor" contains ","; use only letters, digits, '_', '.' and '-' (line 7)`,
		},
	},
	{
		// Without instance_id the host name supplies one, of up to 32 characters.
		file: "app_name_too_long.bad.yml",
		want: []string{
			`asterisk[0].control_app: too long: with an instance id derived from the host name (up to 32 characters) the name can reach 80 characters, and Asterisk takes at most 73; shorten it or set instance_id (line 6)`,
			`asterisk[1].control_app: too long: with an instance id derived from the host name (up to 32 characters) the name can reach 80 characters, and Asterisk takes at most 73; shorten it or set instance_id (line 11)`,
		},
	},
	{
		// NaN compares false with every bound, so it must not slip past the range check.
		file: "owner_preference_nan.bad.yml",
		want: []string{
			`queues[0].owner_preference: must be between 0 and 1 (a share of the time to the deadline) (line 8)`,
			`queues[1].owner_preference: must be between 0 and 1 (a share of the time to the deadline) (line 10)`,
		},
	},
	{
		file: "promise_per.bad.yml",
		want: []string{`queues[0].promise_per: must be customer or queue, got "agent" (line 8)`},
	},
	{
		file: "redis_wait.bad.yml",
		want: []string{
			`redis.wait_replicas: must be >= 0 (line 2)`,
			`redis.wait_timeout: must be from 1ms to 2s (line 3)`,
		},
	},
	{
		file: "sentinel_no_master.bad.yml",
		want: []string{
			`redis.sentinel.master_name: required (line 2)`,
		},
	},
	{
		file: "syntax_error.bad.yml",
		want: []string{
			`invalid YAML: line 6: did not find expected '-' indicator`,
		},
	},
	{
		file: "two_documents.bad.yml",
		want: []string{
			`invalid YAML: line 8: only one document is allowed`,
		},
	},
	{
		file: "merge_self.bad.yml",
		want: []string{
			`queues[0]: merge key (<<) refers to a mapping that is being merged already (an anchor merged into itself) (line 8)`,
		},
	},
	{
		file: "unknown_key.bad.yml",
		want: []string{
			`queues[0].deadlin: unknown key (line 8)`,
		},
	},
	{
		file: "wrong_type.bad.yml",
		want: []string{
			`queues[0].max_attempts: invalid integer "three" (line 8)`,
			`queues[0].owner_preference: expected a number, got a list (line 9)`,
			`log.mask_numbers: invalid boolean "perhaps" (use true or false) (line 11)`,
		},
	},
}

func TestBadFilesReportEveryProblemExactly(t *testing.T) {
	for _, tc := range badFiles {
		t.Run(tc.file, func(t *testing.T) {
			c, err := load(t, tc.file, nil)
			if err == nil {
				t.Fatalf("accepted; want %d problems", len(tc.want))
			}
			if c != nil {
				t.Errorf("returned a config along with the error; a bad file must change nothing")
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error is %T, want *ValidationError: %v", err, err)
			}
			if got, want := err.Error(), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("error mismatch\ngot:\n%s\nwant:\n%s", got, want)
			}
			if len(verr.Problems) != len(tc.want) {
				t.Errorf("got %d problems, want %d", len(verr.Problems), len(tc.want))
			}
		})
	}
}

func TestEveryBadFileIsInTheTable(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]bool{}
	for _, tc := range badFiles {
		inTable[tc.file] = true
	}
	for _, f := range files {
		if !inTable[filepath.Base(f)] {
			t.Errorf("%s has no expected error in badFiles", f)
		}
	}
	if len(files) < 15 {
		t.Errorf("only %d bad files; the suite promises at least 15", len(files))
	}
}

func TestGoodFilesLoad(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../deploy/callbackd.example.yml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f, nil); err != nil {
				t.Fatalf("unexpected error:\n%v", err)
			}
		})
	}
}

func TestGoodFilesMeanWhatTheySay(t *testing.T) {
	tests := []struct {
		file  string
		check func(c *Config) (got, want any)
	}{
		{"business_time.good.yml", func(c *Config) (any, any) { return c.Queues[0].CallingHours.Days, []string(nil) }},
		{"business_time.good.yml", func(c *Config) (any, any) { return c.Queues[0].DeadlineClock, DeadlineBusiness }},
		{"business_time.good.yml", func(c *Config) (any, any) { return c.Queues[1].DeadlineClock, DeadlineWall }},
		{"resolve.good.yml", func(c *Config) (any, any) { return c.Queues[0].Resolve, ResolveTarget }},
		{"resolve.good.yml", func(c *Config) (any, any) { return c.Queues[1].Resolve, ResolveQueue }},
		{"business_time.good.yml", func(c *Config) (any, any) {
			// Thursday 24 December 2026 is closed; Friday the 25th and Saturday the 26th are
			// Christmas; Sunday is not in the week; the 27th to 31st are closed: 2 January 2027
			// opens at 12:00 (a Saturday, 10:00-14:00, the closure ends at noon).
			cal, err := c.Queues[0].CallingHours.Calendar()
			if err != nil {
				return err, nil
			}
			loc, _ := c.Queues[0].CallingHours.Location()
			return cal.Add(time.Date(2026, 12, 23, 17, 0, 0, 0, loc), time.Hour), time.Date(2027, 1, 2, 12, 30, 0, 0, loc)
		}},
		{"url.good.yml", func(c *Config) (any, any) { return c.Redis.Mode(), "url" }},
		{"url.good.yml", func(c *Config) (any, any) { return c.Redis.Addr, "" }},
		{"url.good.yml", func(c *Config) (any, any) { return c.Redis.KeyPrefix, "cb-prod" }},
		{"url.good.yml", func(c *Config) (any, any) { return c.HTTP.Token.Reveal(), "t0ken-0123456789abcdef" }},
		{"sentinel.good.yml", func(c *Config) (any, any) { return c.Redis.Mode(), "sentinel" }},
		{"sentinel.good.yml", func(c *Config) (any, any) {
			return c.Redis.Sentinel.Addrs, []string{"10.0.0.1:26379", "10.0.0.2:26379"}
		}},
		{"sentinel.good.yml", func(c *Config) (any, any) { return c.Redis.Password.Reveal(), "s3cret" }},
		{"sentinel.good.yml", func(c *Config) (any, any) { return c.Redis.WaitReplicas, 1 }},
		{"sentinel.good.yml", func(c *Config) (any, any) { return c.Redis.WaitTimeout.D(), 50 * time.Millisecond }},
		{"cluster_anchors.good.yml", func(c *Config) (any, any) { return c.Redis.Mode(), "cluster" }},
		{"cluster_anchors.good.yml", func(c *Config) (any, any) { return c.Asterisk[1].Name, "pbx2" }},
		// The merge key copies the anchored queue; the explicit name wins.
		{"cluster_anchors.good.yml", func(c *Config) (any, any) { return c.Queues[1].Name, "sales" }},
		{"cluster_anchors.good.yml", func(c *Config) (any, any) { return c.Queues[1].MaxAttempts, 5 }},
		{"cluster_anchors.good.yml", func(c *Config) (any, any) { return c.Queues[1].CallingHours.Timezone, "UTC" }},
		{"cluster_anchors.good.yml", func(c *Config) (any, any) { return c.Detector.DefaultQueue, "support" }},
		{"cluster_anchors.good.yml", func(c *Config) (any, any) { return c.Agents[0].Serves("sales"), true }},
		{"cluster_anchors.good.yml", func(c *Config) (any, any) { return c.Agents[0].Serves("support"), false }},
		{"cluster_anchors.good.yml", func(c *Config) (any, any) { return c.Dialer.CallerID.Number, "0201234500" }},
		{"cluster_anchors.good.yml", func(c *Config) (any, any) {
			return c.Dialer.CustomerDialString("+31201234567"), "PJSIP/+31201234567@provider"
		}},
		{"routes.good.yml", func(c *Config) (any, any) { return len(c.Detector.Routes), 6 }},
		// A short instance id leaves room for a long control app name.
		{"instance_id.good.yml", func(c *Config) (any, any) { return c.InstanceID, "web-1" }},
		{"url.good.yml", func(c *Config) (any, any) { return c.InstanceID, "" }},
		{"routes.good.yml", func(c *Config) (any, any) { return c.Detector.Routes[2], Route{Extension: "_20XX", Queue: "sales"} }},
		{"routes.good.yml", func(c *Config) (any, any) { return c.Detector.Routes[2].Matcher()("2042"), true }},
		{"routes.good.yml", func(c *Config) (any, any) { return c.Detector.Routes[1].Matcher()("PJSIP/2002&PJSIP/2001,20"), true }},
	}
	for _, tc := range tests {
		c := mustLoad(t, tc.file, nil)
		if got, want := tc.check(c); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, want %#v", tc.file, got, want)
		}
	}
}

// The defaults are documented in the example file and the reference; this pins them.
func TestDefaultsFillEverythingLeftOut(t *testing.T) {
	c := mustLoad(t, "minimal.good.yml", nil)
	q := c.Queues[0]
	a := c.Asterisk[0]
	tests := []struct {
		key       string
		got, want any
	}{
		{"redis.addr", c.Redis.Addr, "127.0.0.1:6379"},
		{"redis.db", c.Redis.DB, 0},
		{"redis.key_prefix", c.Redis.KeyPrefix, "callbackd"},
		{"redis.dial_timeout", c.Redis.DialTimeout.D(), 5 * time.Second},
		{"redis.wait_replicas", c.Redis.WaitReplicas, 0},
		{"redis.wait_timeout", c.Redis.WaitTimeout.D(), 100 * time.Millisecond},
		{"asterisk[0].monitor_app", a.MonitorApp, "callbackd-monitor"},
		{"asterisk[0].control_app", a.ControlApp, "callbackd"},
		{"asterisk[0].request_timeout", a.RequestTimeout.D(), 5 * time.Second},
		{"asterisk[0].reconnect.initial", a.Reconnect.Initial.D(), 500 * time.Millisecond},
		{"asterisk[0].reconnect.max", a.Reconnect.Max.D(), 30 * time.Second},
		{"detector.inbound_contexts", len(c.Detector.InboundContexts), 0},
		{"detector.internal_extension", c.Detector.InternalExtension, `^[0-9]{2,6}$`},
		{"detector.customer_number", c.Detector.CustomerNumber, `^(\+[0-9]{6,15}|[0-9]{7,15})$`},
		{"detector.default_country_code", c.Detector.DefaultCountryCode, "31"},
		{"detector.default_queue", c.Detector.DefaultQueue, "support"},
		{"queues[0].deadline.voicemail", q.Deadline.Voicemail.D(), 4 * time.Hour},
		{"queues[0].deadline.unanswered_transfer", q.Deadline.UnansweredTransfer.D(), 2 * time.Hour},
		{"queues[0].deadline.offer", q.Deadline.Offer.D(), time.Hour},
		{"queues[0].deadline.api", q.Deadline.API.D(), 4 * time.Hour},
		{"queues[0].max_attempts", q.MaxAttempts, 3},
		{"queues[0].retry_backoff", q.RetryBackoff.D(), 10 * time.Minute},
		{"queues[0].max_open_age", q.MaxOpenAge.D(), 14 * 24 * time.Hour},
		{"queues[0].calling_hours.timezone", q.CallingHours.Timezone, "Europe/Amsterdam"},
		{"queues[0].calling_hours.days", q.CallingHours.Days, []string{"mon", "tue", "wed", "thu", "fri"}},
		{"queues[0].calling_hours.start", q.CallingHours.Start, "08:30"},
		{"queues[0].calling_hours.end", q.CallingHours.End, "17:30"},
		{"queues[0].owner_preference", q.OwnerPreference, 0.5},
		{"agents", len(c.Agents), 0},
		{"detector.default_country", c.Detector.DefaultCountry, "NL"},
		{"dialer.allow", c.Dialer.Allow, Allow{Countries: []string{"NL"}, Types: []string{"fixed_line", "mobile"}}},
		{"dialer.agent_ring_timeout", c.Dialer.AgentRingTimeout.D(), 20 * time.Second},
		{"dialer.customer_ring_timeout", c.Dialer.CustomerRingTimeout.D(), 30 * time.Second},
		{"dialer.agent_cooldown", c.Dialer.AgentCooldown.D(), 2 * time.Minute},
		{"dialer.wrap_up", c.Dialer.WrapUp.D(), 30 * time.Second},
		{"dialer.lease", c.Dialer.Lease.D(), 60 * time.Second},
		{"http.listen", c.HTTP.Listen, "127.0.0.1:9464"},
		{"http.token", c.HTTP.Token.Reveal(), ""},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"log.mask_numbers", c.Log.MaskNumbers, true},
		{"retention", c.Retention.D(), 720 * time.Hour},
	}
	for _, tc := range tests {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s defaults to %#v, want %#v", tc.key, tc.got, tc.want)
		}
	}
}

// The example file is documentation: every value it spells out for the first Asterisk and the
// first queue, and for the global sections, must be the real default.
func TestExampleFileShowsTheRealDefaults(t *testing.T) {
	c, err := Load("../deploy/callbackd.example.yml", nil)
	if err != nil {
		t.Fatalf("example does not load:\n%v", err)
	}
	def := Default()
	wantAst := DefaultAsterisk()
	wantAst.Name, wantAst.URL, wantAst.Username, wantAst.Password = "pbx1", "http://127.0.0.1:8088/ari", "callbackd", "change-me"
	wantQueue := DefaultQueue()
	wantQueue.Name = "support"
	tests := []struct {
		section   string
		got, want any
	}{
		{"redis", c.Redis, def.Redis},
		{"asterisk[0]", c.Asterisk[0], wantAst},
		{"queues[0]", c.Queues[0], wantQueue},
		{"detector.internal_extension", c.Detector.InternalExtension, def.Detector.InternalExtension},
		{"detector.customer_number", c.Detector.CustomerNumber, def.Detector.CustomerNumber},
		{"detector.default_country_code", c.Detector.DefaultCountryCode, def.Detector.DefaultCountryCode},
		{"detector.default_country", c.Detector.DefaultCountry, def.Detector.DefaultCountry},
		{"dialer.allow", c.Dialer.Allow, def.Dialer.Allow},
		{"dialer.agent_ring_timeout", c.Dialer.AgentRingTimeout, def.Dialer.AgentRingTimeout},
		{"dialer.customer_ring_timeout", c.Dialer.CustomerRingTimeout, def.Dialer.CustomerRingTimeout},
		{"dialer.agent_cooldown", c.Dialer.AgentCooldown, def.Dialer.AgentCooldown},
		{"dialer.wrap_up", c.Dialer.WrapUp, def.Dialer.WrapUp},
		{"dialer.lease", c.Dialer.Lease, def.Dialer.Lease},
		{"http", c.HTTP, def.HTTP},
		{"log", c.Log, def.Log},
		{"retention", c.Retention, def.Retention},
	}
	for _, tc := range tests {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("example %s = %#v, default is %#v", tc.section, tc.got, tc.want)
		}
	}
}

func TestEnvironmentOverridesFileValues(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(c *Config) (got, want any)
	}{
		{"redis address", map[string]string{"CALLBACKD_REDIS_ADDR": "10.1.1.1:6380"},
			func(c *Config) (any, any) { return c.Redis.Addr, "10.1.1.1:6380" }},
		{"redis password", map[string]string{"CALLBACKD_REDIS_PASSWORD": "pw"},
			func(c *Config) (any, any) { return c.Redis.Password.Reveal(), "pw" }},
		{"password of the first Asterisk", map[string]string{"CALLBACKD_ASTERISK_0_PASSWORD": "from-env"},
			func(c *Config) (any, any) { return c.Asterisk[0].Password.Reveal(), "from-env" }},
		{"nested duration", map[string]string{"CALLBACKD_ASTERISK_0_RECONNECT_MAX": "1m"},
			func(c *Config) (any, any) { return c.Asterisk[0].Reconnect.Max.D(), time.Minute }},
		{"integer in the second queue", map[string]string{"CALLBACKD_QUEUES_1_MAX_ATTEMPTS": "7"},
			func(c *Config) (any, any) { return c.Queues[1].MaxAttempts, 7 }},
		{"float", map[string]string{"CALLBACKD_QUEUES_0_OWNER_PREFERENCE": "0.25"},
			func(c *Config) (any, any) { return c.Queues[0].OwnerPreference, 0.25 }},
		{"boolean", map[string]string{"CALLBACKD_LOG_MASK_NUMBERS": "no"},
			func(c *Config) (any, any) { return c.Log.MaskNumbers, false }},
		{"list of regexps keeps commas inside braces", map[string]string{"CALLBACKD_DIALER_ALLOW": `^\+31[0-9]{9}$, ^\+32[0-9]{8,9}$`},
			func(c *Config) (any, any) {
				return c.Dialer.Allow.Patterns, []string{`^\+31[0-9]{9}$`, `^\+32[0-9]{8,9}$`}
			}},
		{"deeper key with underscores", map[string]string{"CALLBACKD_QUEUES_0_CALLING_HOURS_TIMEZONE": "UTC"},
			func(c *Config) (any, any) { return c.Queues[0].CallingHours.Timezone, "UTC" }},
		{"token", map[string]string{"CALLBACKD_HTTP_LISTEN": "0.0.0.0:9464", "CALLBACKD_HTTP_TOKEN": "tok-0123456789abcdef"},
			func(c *Config) (any, any) { return c.HTTP.Token.Reveal(), "tok-0123456789abcdef" }},
		{"url replaces the default address", map[string]string{"CALLBACKD_REDIS_URL": "redis://r:6379"},
			func(c *Config) (any, any) { return c.Redis.Mode() + " " + c.Redis.Addr, "url " }},
		{"instance id, e.g. from a systemd template's %i", map[string]string{"CALLBACKD_INSTANCE_ID": "b"},
			func(c *Config) (any, any) { return c.InstanceID, "b" }},
		{"variables without the prefix are ignored", map[string]string{"REDIS_ADDR": "nope:1"},
			func(c *Config) (any, any) { return c.Redis.Addr, "127.0.0.1:6379" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, "env.good.yml", tc.env)
			if got, want := tc.check(c); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

// Every list of words can come from the environment, whatever its element type.
func TestEnvironmentSetsEveryKindOfList(t *testing.T) {
	data, err := os.ReadFile("testdata/env.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte("http:\n  tokens:\n    - name: crm\n      token: crm-token-0123456789\n      roles: [read]\n")...)
	tests := []struct {
		name    string
		environ []string
		check   func(c *Config) (got, want any)
	}{
		{"roles of a token", []string{"CALLBACKD_HTTP_TOKENS_0_ROLES=read,write"},
			func(c *Config) (any, any) { return c.HTTP.Tokens[0].Roles, []Role{RoleRead, RoleWrite} }},
		{"days of the calling hours", []string{"CALLBACKD_QUEUES_1_CALLING_HOURS_DAYS=sat,sun"},
			func(c *Config) (any, any) { return c.Queues[1].CallingHours.Days, []string{"sat", "sun"} }},
		{"inbound contexts", []string{"CALLBACKD_DETECTOR_INBOUND_CONTEXTS=from-trunk,from-sip"},
			func(c *Config) (any, any) { return c.Detector.InboundContexts, []string{"from-trunk", "from-sip"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseEnviron(data, tc.environ)
			if err != nil {
				t.Fatalf("refused:\n%v", err)
			}
			if got, want := tc.check(c); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestBadEnvironmentIsRejectedNamingTheVariable(t *testing.T) {
	data, err := os.ReadFile("testdata/env.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		environ []string
		want    string
	}{
		{"value does not parse", []string{"CALLBACKD_QUEUES_1_MAX_ATTEMPTS=lots"},
			`queues[1].max_attempts: invalid integer "lots" (from CALLBACKD_QUEUES_1_MAX_ATTEMPTS)`},
		{"bad duration", []string{"CALLBACKD_RETENTION=30 days"},
			`retention: invalid duration "30 days" (use Go duration syntax such as 30s, 10m, 4h) (from CALLBACKD_RETENTION)`},
		{"valid syntax, invalid value", []string{"CALLBACKD_QUEUES_0_MAX_ATTEMPTS=0"},
			`queues[0].max_attempts: must be >= 1 (from CALLBACKD_QUEUES_0_MAX_ATTEMPTS)`},
		{"typo in the name", []string{"CALLBACKD_REDIS_PASSWROD=x"},
			`CALLBACKD_REDIS_PASSWROD: environment variable names no configuration key`},
		{"list entry the file does not have", []string{"CALLBACKD_QUEUES_2_NAME=extra"},
			`CALLBACKD_QUEUES_2_NAME: environment variable names no configuration key`},
		{"a whole section is not a key", []string{"CALLBACKD_REDIS=x"},
			`CALLBACKD_REDIS: environment variable names no configuration key`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			environ := append([]string{"PATH=/bin", "HOME=/root"}, tc.environ...)
			c, err := ParseEnviron(data, environ)
			if err == nil {
				t.Fatalf("accepted; want %q", tc.want)
			}
			if c != nil {
				t.Error("returned a config along with the error")
			}
			if err.Error() != tc.want {
				t.Errorf("got  %q\nwant %q", err.Error(), tc.want)
			}
		})
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	for _, tc := range []struct {
		file  string
		env   map[string]string
		wants []string
	}{
		// The URL carries the Redis password (a separate one is refused with a URL).
		{"url.good.yml", map[string]string{"CALLBACKD_ASTERISK_0_PASSWORD": "ari-pw-456"},
			[]string{"rediss://callbackd:<secret>@redis.example.net:6380/2", "password: <secret>", "token: <secret>"}},
		{"minimal.good.yml", map[string]string{"CALLBACKD_REDIS_PASSWORD": "redis-pw-123"},
			[]string{"password: <secret>"}},
	} {
		c := mustLoad(t, tc.file, tc.env)
		out, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		printed := map[string]string{
			"yaml": string(out),
			"%v":   sprintf("%v", c),
			"%+v":  sprintf("%+v", *c),
			"%#v":  sprintf("%#v", *c),
		}
		for how, s := range printed {
			for _, secret := range []string{"s3cret", "t0ken-0123456789abcdef", "redis-pw-123", "ari-pw-456"} {
				if strings.Contains(s, secret) {
					t.Errorf("%s: %s output leaks %q", tc.file, how, secret)
				}
			}
		}
		for _, want := range tc.wants {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s: effective config lacks %q:\n%s", tc.file, want, out)
			}
		}
	}
}

func TestSecretURLMasksOnlyThePassword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"redis://10.0.0.1:6379/0", "redis://10.0.0.1:6379/0"},
		{"redis://user@10.0.0.1:6379", "redis://user@10.0.0.1:6379"},
		{"redis://user:pw@10.0.0.1:6379", "redis://user:<secret>@10.0.0.1:6379"},
		{"redis://:pw@h:1", "redis://:<secret>@h:1"},
		{"redis://us er:p%zz@h", "<secret>"},
	}
	for _, tc := range tests {
		if got := SecretURL(tc.in).String(); got != tc.want {
			t.Errorf("SecretURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// What `config check` prints is itself a valid config that means the same thing.
func TestEffectiveConfigLoadsBackUnchanged(t *testing.T) {
	for _, file := range []string{"minimal.good.yml", "cluster_anchors.good.yml", "sentinel.good.yml"} {
		t.Run(file, func(t *testing.T) {
			c := mustLoad(t, file, nil)
			out, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(out, nil)
			if err != nil {
				t.Fatalf("effective config does not load:\n%v\n%s", err, out)
			}
			// Secrets come back as the mask; everything else must be identical.
			for i := range c.Asterisk {
				c.Asterisk[i].Password = masked
			}
			if c.Redis.Password != "" {
				c.Redis.Password = masked
			}
			c.compiled, back.compiled = nil, nil
			if !reflect.DeepEqual(c, back) {
				t.Errorf("round trip changed the config:\nbefore %+v\nafter  %+v", c, back)
			}
		})
	}
}

func TestAllowListIsAnchored(t *testing.T) {
	tests := []struct {
		allow  string
		number string
		want   bool
	}{
		{"", "+31201234567", true},
		{"", "+3120123456", false},
		{"", "+312012345678", false},
		{"", "+442012345678", false},
		{"", "+31900123456", false}, // premium rate: issue 12
		{`CALLBACKD_DIALER_ALLOW=\+31.*`, "+31201234567", true},
		{`CALLBACKD_DIALER_ALLOW=\+31.*`, "00+31201234567", false},
		{`CALLBACKD_DIALER_ALLOW=\+4420`, "+442012345678", false},
		{`CALLBACKD_DIALER_ALLOW=\+4420[0-9]{8}`, "+442012345678", true},
	}
	data, err := os.ReadFile("testdata/minimal.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		var environ []string
		if tc.allow != "" {
			environ = []string{tc.allow}
		}
		c, err := ParseEnviron(data, environ)
		if err != nil {
			t.Fatalf("%s: %v", tc.allow, err)
		}
		if got := c.Allowed(tc.number); got != tc.want {
			t.Errorf("allow %q: Allowed(%q) = %v, want %v", tc.allow, tc.number, got, tc.want)
		}
	}
}

func TestUnvalidatedConfigFailsClosed(t *testing.T) {
	c := Default()
	if c.Allowed("+31201234567") {
		t.Error("a config that was never validated allows dialling")
	}
	if c.IsInternal("1001") || c.IsCustomerNumber("+31201234567") {
		t.Error("a config that was never validated classifies numbers")
	}
}

func TestDetectorPatterns(t *testing.T) {
	c := mustLoad(t, "minimal.good.yml", nil)
	tests := []struct {
		number             string
		internal, customer bool
	}{
		{"1001", true, false},
		{"42", true, false},
		{"0201234567", false, true},
		{"+31201234567", false, true},
		{"anonymous", false, false},
	}
	for _, tc := range tests {
		if got := c.IsInternal(tc.number); got != tc.internal {
			t.Errorf("IsInternal(%q) = %v, want %v", tc.number, got, tc.internal)
		}
		if got := c.IsCustomerNumber(tc.number); got != tc.customer {
			t.Errorf("IsCustomerNumber(%q) = %v, want %v", tc.number, got, tc.customer)
		}
	}
}

func TestCallingHoursOpen(t *testing.T) {
	h := DefaultQueue().CallingHours
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"Monday at opening", time.Date(2026, 11, 23, 8, 30, 0, 0, ams), true},
		{"Monday a minute before opening", time.Date(2026, 11, 23, 8, 29, 59, 0, ams), false},
		{"Monday at closing", time.Date(2026, 11, 23, 17, 30, 0, 0, ams), false},
		{"Friday afternoon", time.Date(2026, 11, 27, 16, 0, 0, 0, ams), true},
		{"Saturday", time.Date(2026, 11, 28, 10, 0, 0, 0, ams), false},
		// 08:00 UTC is 09:00 in Amsterdam in winter: the queue's zone decides, not the caller's.
		{"UTC time inside Amsterdam hours", time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC), true},
		{"UTC time before Amsterdam opening", time.Date(2026, 11, 23, 7, 15, 0, 0, time.UTC), false},
	}
	for _, tc := range tests {
		if got := h.Open(tc.at); got != tc.want {
			t.Errorf("%s: Open(%s) = %v, want %v", tc.name, tc.at, got, tc.want)
		}
	}
	if (CallingHours{Timezone: "Nowhere/Void", Days: []string{"mon"}, Start: "00:00", End: "23:59"}).Open(tests[0].at) {
		t.Error("invalid calling hours are open")
	}
}

func TestDeadlineForReason(t *testing.T) {
	d := DefaultQueue().Deadline
	tests := []struct {
		reason queue.Reason
		want   time.Duration
		ok     bool
	}{
		{queue.ReasonVoicemail, 4 * time.Hour, true},
		{queue.ReasonUnansweredTransfer, 2 * time.Hour, true},
		{queue.ReasonOffer, time.Hour, true},
		{queue.ReasonAPI, 4 * time.Hour, true},
		{"fax", 0, false},
	}
	for _, tc := range tests {
		got, ok := d.For(tc.reason)
		if got != tc.want || ok != tc.ok {
			t.Errorf("For(%q) = %v, %v; want %v, %v", tc.reason, got, ok, tc.want, tc.ok)
		}
	}
}

func TestNextOpeningOfCallingHours(t *testing.T) {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	h := DefaultQueue().CallingHours // mon–fri 08:30–17:30 Amsterdam
	at := func(day, hh, mm int) time.Time { return time.Date(2026, 11, day, hh, mm, 0, 0, ams) }
	for _, tc := range []struct {
		name string
		now  time.Time
		want time.Time
	}{
		{"open now", at(23, 10, 0), at(23, 10, 0)},
		{"before opening on a weekday", at(23, 7, 0), at(23, 8, 30)},
		{"after closing: next morning", at(23, 18, 0), at(24, 8, 30)},
		{"friday evening: monday", at(27, 18, 0), at(30, 8, 30)},
		{"sunday: monday", at(29, 12, 0), at(30, 8, 30)},
		{"from another time zone", at(23, 7, 0).UTC(), at(23, 8, 30)},
	} {
		if got := h.NextOpening(tc.now); !got.Equal(tc.want) {
			t.Errorf("%s: NextOpening(%v) = %v, want %v", tc.name, tc.now, got.In(ams), tc.want)
		}
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{"a", []string{"a"}},
		{"a, b ,c", []string{"a", "b", "c"}},
		{`^[0-9]{2,6}$,^(1|2)$`, []string{`^[0-9]{2,6}$`, `^(1|2)$`}},
		{"[::1]:26379,10.0.0.1:26379", []string{"[::1]:26379", "10.0.0.1:26379"}},
		{"a,,b", []string{"a", "", "b"}},
	}
	for _, tc := range tests {
		if got := splitList(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDurationSyntax(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		printed string
		wantErr bool
	}{
		{"4h", 4 * time.Hour, "4h", false},
		{"90m", 90 * time.Minute, "1h30m", false},
		{"1m30s", 90 * time.Second, "1m30s", false},
		{"500ms", 500 * time.Millisecond, "500ms", false},
		{"720h", 720 * time.Hour, "720h", false},
		{"60", 0, "", true},
		{"4 hours", 0, "", true},
		{"", 0, "", true},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseDuration(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if got.D() != tc.want || got.String() != tc.printed {
			t.Errorf("ParseDuration(%q) = %v printed %q, want %v printed %q", tc.in, got.D(), got.String(), tc.want, tc.printed)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yml", nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not wrap os.ErrNotExist", err)
	}
	var verr *ValidationError
	if errors.As(err, &verr) {
		t.Error("a missing file is reported as a validation problem")
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a, *a]"))
	f.Add([]byte("queues: [{<<: {name: x}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, nil)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v; want exactly one", c != nil, err)
		}
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			return
		}
		if c.compiled == nil {
			t.Fatal("a config returned as valid has no compiled patterns")
		}
		if _, err := Marshal(c); err != nil {
			t.Fatalf("valid config does not marshal: %v", err)
		}
	})
}

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }

func BenchmarkParseExample(b *testing.B) {
	data, err := os.ReadFile("../deploy/callbackd.example.yml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// Duration also works with plain yaml.Unmarshal, for code that embeds it in its own types.
func TestDurationWithPlainYAML(t *testing.T) {
	tests := []struct {
		doc     string
		want    time.Duration
		wantErr string
	}{
		{"d: 90s", 90 * time.Second, ""},
		{"d: 2h", 2 * time.Hour, ""},
		{"d: soon", 0, `line 1: invalid duration "soon" (use Go duration syntax such as 30s, 10m, 4h)`},
		{"d: [1s]", 0, "line 1: expected a duration, got a list"},
	}
	for _, tc := range tests {
		var v struct {
			D Duration `yaml:"d"`
		}
		err := yaml.Unmarshal([]byte(tc.doc), &v)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%q: error %v, want %q", tc.doc, err, tc.wantErr)
			}
			continue
		}
		if err != nil || v.D.D() != tc.want {
			t.Errorf("%q: got %v, %v; want %v", tc.doc, v.D.D(), err, tc.want)
		}
	}
}

func TestURLProblemsDoNotEchoPasswords(t *testing.T) {
	data := []byte(`redis:
  url: "redis://u:hunter2@host:port-is-%zz/0"
asterisk:
  - name: pbx1
    url: "http://u:hunter3@[::1/ari"
    username: u
    password: p
queues:
  - name: q
`)
	_, err := Parse(data, nil)
	if err == nil {
		t.Fatal("accepted malformed URLs")
	}
	for _, secret := range []string{"hunter2", "hunter3"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks %q:\n%v", secret, err)
		}
	}
	want := "redis.url: invalid URL (details withheld: it contains credentials) (line 2)\n" +
		"asterisk[0].url: invalid URL (details withheld: it contains credentials) (line 5)"
	if err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}
