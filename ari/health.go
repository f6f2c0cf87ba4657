package ari

import (
	"net/http"

	"github.com/callbackd/callbackd/internal/netcause"
)

// LastError is why the last connection attempt failed or the last connection dropped; nil
// while connected and before the first attempt ends. /readyz shows it, so "not connected" comes
// with its cause (a refused connection, a wrong password, a timeout).
func (c *Conn) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Health is one line about this connection for readiness: "" when connected, else what is
// wrong and, when known, why.
func (c *Conn) Health() string {
	if c.Connected() {
		return ""
	}
	err := c.LastError()
	if err == nil {
		return "not connected yet"
	}
	return "not connected: " + netcause.Describe(err)
}

func (c *Conn) failed(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
	if c.opts.OnFailure != nil {
		c.opts.OnFailure(c.opts.Name, err)
	}
}

// Unauthorized tells netcause that a 401 is a rejected username or password.
func (e *HTTPError) Unauthorized() bool { return e.Status == http.StatusUnauthorized }
