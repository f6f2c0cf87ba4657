package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// DialplanPattern compiles an Asterisk extension pattern ("_10XX", "_2[0-4]X.", "_+3120!")
// into an anchored regexp: X is 0-9, Z 1-9, N 2-9, [..] a class, "." one or more characters,
// "!" zero or more; anything else stands for itself. Asterisk's own matching, so that a route
// reads like the dialplan it mirrors.
func DialplanPattern(p string) (*regexp.Regexp, error) {
	body, ok := strings.CutPrefix(p, "_")
	if !ok || body == "" {
		return nil, fmt.Errorf("pattern %q must start with _ and have something after it", p)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case 'X', 'x':
			b.WriteString("[0-9]")
		case 'Z', 'z':
			b.WriteString("[1-9]")
		case 'N', 'n':
			b.WriteString("[2-9]")
		case '.':
			b.WriteString(".+")
		case '!':
			b.WriteString(".*")
		case '[':
			end := strings.IndexByte(body[i:], ']')
			if end < 2 {
				return nil, fmt.Errorf("pattern %q: unclosed or empty [ at character %d", p, i+2)
			}
			class := body[i+1 : i+end]
			for _, r := range class {
				if !strings.ContainsRune("0123456789-", r) {
					return nil, fmt.Errorf("pattern %q: class [%s] may hold only digits and ranges", p, class)
				}
			}
			b.WriteString("[" + class + "]")
			i += end
		default:
			if c <= ' ' || c == ']' {
				return nil, fmt.Errorf("pattern %q: unexpected %q at character %d", p, c, i+2)
			}
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// NormalizeDialString puts a Dial() destination list in one spelling: the part before the
// first comma, destinations trimmed and sorted, technology in upper case, so
// "pjsip/1002 & PJSIP/1001,20" is "PJSIP/1001&PJSIP/1002".
func NormalizeDialString(s string) string {
	first, _, _ := strings.Cut(s, ",")
	var dests []string
	for _, d := range strings.Split(first, "&") {
		d = strings.TrimSpace(d)
		if tech, res, ok := strings.Cut(d, "/"); ok {
			d = strings.ToUpper(tech) + "/" + res
		}
		if d != "" {
			dests = append(dests, d)
		}
	}
	slices.Sort(dests)
	return strings.Join(dests, "&")
}

func (v *validator) routes(list []Route, queues map[string]bool) {
	seen := map[string]int{}
	for i, r := range list {
		p := fmt.Sprintf("detector.routes[%d]", i)
		var set []string
		for j, val := range []string{r.AsteriskQueue, r.RingGroup, r.Extension, r.DID, r.Context} {
			if val != "" {
				set = append(set, RouteKeys[j])
			}
		}
		switch {
		case len(set) == 0:
			v.addf(p, "needs one of %s: what the customer asked for", strings.Join(RouteKeys, ", "))
		case len(set) > 1:
			v.addf(p, "%s are mutually exclusive; a route matches one thing (write two routes)", strings.Join(set, " and "))
		default:
			v.routeMatch(p, r)
		}
		switch {
		case r.Queue == "":
			v.addf(p+".queue", "required: the callback queue the promise goes to")
		case len(queues) > 0 && !queues[r.Queue]:
			v.addf(p+".queue", "unknown queue %q", r.Queue)
		}
		if len(set) == 1 {
			key, value := r.Match()
			if key == "ring_group" {
				value = NormalizeDialString(value)
			}
			id := key + "\x00" + value
			if j, dup := seen[id]; dup {
				v.addf(p+"."+key, "matches the same %q as detector.routes[%d], which comes first: this route is never used", r.matchValue(), j)
			} else {
				seen[id] = i
			}
		}
	}
}

func (r Route) matchValue() string { _, v := r.Match(); return v }

func (v *validator) routeMatch(p string, r Route) {
	key, value := r.Match()
	path := p + "." + key
	if strings.TrimSpace(value) != value || strings.ContainsAny(value, " \t\r\n") {
		v.addf(path, "must not contain spaces, got %q", value)
		return
	}
	switch key {
	case "asterisk_queue":
		if strings.ContainsAny(value, ",()") {
			v.addf(path, "must be a queue name as in Queue(name), got %q", value)
		}
	case "ring_group":
		for _, d := range strings.Split(value, "&") {
			if !endpointRE.MatchString(strings.TrimSpace(d)) || strings.Contains(d, ",") {
				v.addf(path, "must be Dial() destinations joined by & (e.g. PJSIP/1001&PJSIP/1002), got %q", value)
				return
			}
		}
	case "extension", "did":
		if strings.HasPrefix(value, "_") {
			if _, err := DialplanPattern(value); err != nil {
				v.addf(path, "invalid Asterisk pattern: %v", err)
			}
		}
	}
}
