// Package netcause names why a connection to Redis or Asterisk failed in the words an operator
// acts on — connection refused, auth failed, timeout — instead of the last wrapper's words
// ("context deadline exceeded" for a server that refused the connection).
package netcause

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
)

// Causes, as Of returns them.
const (
	Refused     = "connection refused"
	AuthFailed  = "auth failed"
	Timeout     = "timeout"
	Unreachable = "host unreachable"
	DNS         = "name not found"
	Reset       = "connection reset"
	Closed      = "client closed"
	Unknown     = ""
)

// Unauthorized marks an error as a rejected username or password. ari wraps its
// ErrUnauthorized in it and Redis' WRONGPASS/NOAUTH replies are recognised by their text.
type Unauthorized interface{ Unauthorized() bool }

// Of classifies err; Unknown when it is none of the causes above.
func Of(err error) string {
	if err == nil {
		return Unknown
	}
	var ua Unauthorized
	if errors.As(err, &ua) && ua.Unauthorized() {
		return AuthFailed
	}
	msg := err.Error()
	for _, p := range []string{"WRONGPASS", "NOAUTH", "invalid username-password pair", "ERR AUTH", "rejected the username or password"} {
		if strings.Contains(msg, p) {
			return AuthFailed
		}
	}
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET):
		return Reset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return Unreachable
	case errors.As(err, &dns):
		return DNS
	case errors.Is(err, net.ErrClosed), strings.Contains(msg, "client is closed"):
		// go-redis' ErrClosed, named by its text so this package needs no Redis client.
		return Closed
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return Timeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Timeout
	}
	return Unknown
}

// Describe is "cause (error)" when the cause is known, else the error itself.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	if c := Of(err); c != Unknown {
		return c + " (" + err.Error() + ")"
	}
	return err.Error()
}
