// Package stasisapp holds the names of callbackd's Stasis applications on Asterisk: what a
// name may hold, and each daemon instance's own names (issue 11, active-active).
package stasisapp

import (
	"fmt"
	"strings"
)

// Application names per daemon (issue 11, active-active). Asterisk gives a Stasis application
// name to one socket at a time: a second client registering it takes it over
// (ApplicationReplaced), and from then on the first hears nothing of its own callback legs.
// So every daemon on one Asterisk registers names of its own, the configured ones with its
// instance id appended. Nothing in the dialplan enters either application by name: the
// monitor app sees every call through subscribeAll (each subscribeAll app gets its own copy
// of every event, res/stasis/app.c app_create), and the control app gets only the legs the
// daemon originates or creates into it.

// MaxNameLen is the longest application name Asterisk registers: ARI_MAX_APP_NAME_LEN, a
// dialplan context's 80 characters less the "stasis-" prefix of per-call contexts
// (res/ari/ari_websockets.h). A longer name fails the events socket's handshake.
const MaxNameLen = 80 - len("stasis-")

// MaxInstanceIDLen bounds an instance id, so that it leaves room for the configured names.
const MaxInstanceIDLen = 32

// nameChars describes the characters Check and CheckInstanceID accept, for errors.
const nameChars = "letters, digits, '_', '.' and '-'"

// Check says what is wrong with a Stasis application name, nil when nothing is. Asterisk
// splits the events socket's app parameter at commas, the dialplan's Stasis() arguments at
// commas too, and the name travels in REST paths (/applications/{name}); letters, digits,
// '_', '.' and '-' are safe everywhere.
func Check(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("an application name must not be empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("application name %q is %d characters long; Asterisk takes at most %d", name, len(name), MaxNameLen)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return !nameChar(r) }); i >= 0 {
		return fmt.Errorf("application name %q contains %q; use only %s", name, name[i:i+1], nameChars)
	}
	return nil
}

// CheckInstanceID says what is wrong with an instance id, nil when nothing is.
func CheckInstanceID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("an instance id must not be empty")
	case len(id) > MaxInstanceIDLen:
		return fmt.Errorf("instance id %q is %d characters long; at most %d", id, len(id), MaxInstanceIDLen)
	}
	if i := strings.IndexFunc(id, func(r rune) bool { return !nameChar(r) }); i >= 0 {
		return fmt.Errorf("instance id %q contains %q; use only %s", id, id[i:i+1], nameChars)
	}
	return nil
}

func nameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
}

// Names returns the monitor and control application names of daemon instance id:
// "<monitor>-<id>" and "<control>-<id>". An empty id keeps the configured names.
func Names(monitor, control, id string) (string, string) {
	if id == "" {
		return monitor, control
	}
	return monitor + "-" + id, control + "-" + id
}

// FromHost derives an instance id from a host name, the same on every start of the
// host: its first label, lower-cased, every character CheckInstanceID refuses turned into '-',
// cut to MaxInstanceIDLen; "" when nothing is left.
func FromHost(host string) string {
	host, _, _ = strings.Cut(host, ".")
	host = strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		if !nameChar(r) {
			return '-'
		}
		return r
	}, host)
	if len(host) > MaxInstanceIDLen {
		host = host[:MaxInstanceIDLen]
	}
	return strings.Trim(host, "-")
}
