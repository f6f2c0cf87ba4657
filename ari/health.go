package ari

import (
	"net/http"

	"go.uber.org/zap"

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
	c.mu.Lock()
	app := c.replacedApp
	c.mu.Unlock()
	if app != "" {
		return "application " + app + " was taken over by another ARI client (ApplicationReplaced): " +
			"no promise is claimed for this Asterisk's agents until callbackd takes it back, after the longest " +
			"reconnect delay; give every daemon on one Asterisk its own instance_id"
	}
	if c.Connected() {
		return ""
	}
	err := c.LastError()
	if err == nil {
		return "not connected yet"
	}
	return "not connected: " + netcause.Describe(err)
}

// replaced handles ApplicationReplaced: another client (a second daemon with the same app
// names, a stray ARI tool) registered one of our apps, so Asterisk sends its events there and
// none here. The connection counts as down at once, so its agents are not rung and /readyz
// names the app; the session ends after Backoff.Max and the next one takes the app back.
func (c *Conn) replaced(session uint64, app string) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	c.mu.Lock()
	if session != c.sessions {
		c.mu.Unlock()
		return
	}
	c.replacedApp = app
	wasUp := c.up
	c.up = false
	c.mu.Unlock()
	c.log.Error("another ARI client took over application "+app+" (ApplicationReplaced): a second daemon with this instance_id, "+
		"or an ARI tool using the name; no promise is claimed for this Asterisk's agents until callbackd takes it back",
		zap.String("app", app), zap.Duration("retry_in", c.backoff.Max))
	select {
	case c.takenOver <- struct{}{}:
	default:
	}
	if !wasUp {
		return
	}
	c.opts.Metrics.setConnected(c.opts.Name, false)
	if c.opts.OnState != nil {
		c.opts.OnState(c.opts.Name, false)
	}
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
