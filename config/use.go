package config

import (
	"fmt"
	"os"
)

// Use says what a command does with a configuration, so validation demands only what that use
// needs: a tool that reads the promise store or replays a trace never contacts Asterisk and
// must not make its operator find the ARI password first.
type Use int

const (
	// UseDaemon is everything the daemon needs, ARI credentials included: run, record,
	// config check.
	UseDaemon Use = iota
	// UseOffline never contacts Asterisk (promises, replay): asterisk[].username and
	// .password may be empty. Everything else is checked as for the daemon, so a file that
	// passes here and fails `config check` fails only for the credentials.
	UseOffline
)

func (u Use) String() string {
	switch u {
	case UseDaemon:
		return "daemon"
	case UseOffline:
		return "offline"
	}
	return fmt.Sprintf("Use(%d)", int(u))
}

// LoadEnvironFor is LoadEnviron validated for use.
func LoadEnvironFor(use Use, path string, environ []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseEnvironFor(use, data, environ)
}

// ParseEnvironFor is ParseEnviron validated for use.
func ParseEnvironFor(use Use, data []byte, environ []string) (*Config, error) {
	env, environ := environLookup(environ)
	return parse(data, env, environ, use)
}
