package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("4h", "30s") so the file says
// what it means; bare numbers are rejected because their unit would be a guess.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String drops zero minutes and seconds ("4h", not "4h0m0s") so the effective config reads
// like the file it came from.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseDuration parses a Go duration string, naming the offending text on failure.
func ParseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use Go duration syntax such as 30s, 10m, 4h)", s)
	}
	return Duration(v), nil
}

// UnmarshalYAML lets Duration be decoded by plain yaml.Unmarshal too.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration, got a %s", n.Line, kindName(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration in the same syntax it is read in.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

const masked = "<secret>"

// Secret is a credential. Every way of printing it (fmt, YAML) shows "<secret>", so dumping the
// effective config or logging a struct never leaks it. Use Reveal where the value is needed.
type Secret string

// Reveal returns the credential itself.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// GoString keeps %#v from printing the credential.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalYAML masks the credential.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// SecretURL is a URL that may carry a password in its userinfo; printing it masks the password
// and keeps the rest, which is what an operator needs to debug a connection.
type SecretURL string

// Reveal returns the URL including any password.
func (u SecretURL) Reveal() string { return string(u) }

func (u SecretURL) String() string {
	if u == "" {
		return ""
	}
	p, err := url.Parse(string(u))
	if err != nil {
		// An unparseable URL may still contain a password somewhere; show none of it.
		return masked
	}
	if p.User == nil {
		return string(u)
	}
	if _, hasPass := p.User.Password(); hasPass {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
		return strings.Replace(p.String(), ":xxxxx@", ":"+masked+"@", 1)
	}
	return string(u)
}

// GoString keeps %#v from printing the password.
func (u SecretURL) GoString() string { return strconv.Quote(u.String()) }

// MarshalYAML masks the password.
func (u SecretURL) MarshalYAML() (any, error) { return u.String(), nil }

// parseClock parses "HH:MM" into minutes after midnight.
func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("invalid time of day %q (want HH:MM, 24-hour)", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	case yaml.DocumentNode:
		return "document"
	}
	return "node"
}
