package config

import (
	"fmt"
	"strings"
)

// The example configuration's made-up values (deploy/callbackd.example.yml). They pass
// validation — the example must load — but a daemon running with them rings people who do not
// exist and shows customers a number that is not yours.
const (
	examplePassword     = "change-me"
	exampleCallerNumber = "+31201234500"
	exampleCallerName   = "Example Support"
)

// exampleAgents are the example's agents, by id and endpoint: both must match, so a real
// agent who happens to be called anna is not refused.
var exampleAgents = map[string]string{"anna": "PJSIP/1001", "bram": "PJSIP/1002"}

// Placeholders lists every value of c that is still the example's, each with what to change:
// what `config check --strict` and `run` (unless --allow-example) refuse.
func Placeholders(c *Config) []Problem {
	var out []Problem
	add := func(path, format string, args ...any) {
		out = append(out, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	secret := func(path, value, what string) {
		if strings.Contains(value, examplePassword) {
			add(path, "is the example's %q; set %s", examplePassword, what)
		}
	}
	secret("redis.password", c.Redis.Password.Reveal(), "Redis' password (prefer CALLBACKD_REDIS_PASSWORD)")
	secret("redis.url", c.Redis.URL.Reveal(), "the password in the URL")
	for i, a := range c.Asterisk {
		secret(fmt.Sprintf("asterisk[%d].password", i), a.Password.Reveal(),
			fmt.Sprintf("the password of the [%s] user in ari.conf (prefer CALLBACKD_ASTERISK_%d_PASSWORD)", a.Username, i))
	}
	secret("http.token", c.HTTP.Token.Reveal(), "a long random token (prefer CALLBACKD_HTTP_TOKEN)")
	if c.Dialer.CallerID.Number == exampleCallerNumber {
		add("dialer.caller_id.number", "is the example's %s; set the number customers should see (one of yours that your trunk lets through)", exampleCallerNumber)
	}
	if c.Dialer.CallerID.Name == exampleCallerName {
		add("dialer.caller_id.name", "is the example's %q; set your company's name", exampleCallerName)
	}
	for i, a := range c.Agents {
		if ep, ok := exampleAgents[a.ID]; ok && a.Endpoint == ep {
			add(fmt.Sprintf("agents[%d]", i), "%s on %s is an example agent; list your agents and their endpoints (or none: promises are still made)", a.ID, a.Endpoint)
		}
	}
	return out
}
