// Package daemontest holds what tests of the daemon and its subcommands share: a fake
// Asterisk on a fast simulated clock, and polling for what happens asynchronously.
package daemontest

import (
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/internal/clock"
)

// StartPBX starts a fake Asterisk on a simulated clock that runs 20× faster than the wall
// clock, with 1003 a phone nobody answers and an answering trunk, stopped when t ends.
func StartPBX(t testing.TB) (*aritest.Server, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	pbx, err := aritest.New(aritest.Options{Clock: clk})
	if err != nil {
		t.Fatalf("starting the fake Asterisk: %v", err)
	}
	stop, driven := make(chan struct{}), make(chan struct{})
	go func() { defer close(driven); aritest.Drive(clk, 20*time.Millisecond, stop, time.Hour) }()
	t.Cleanup(func() { close(stop); <-driven; pbx.Close() })
	pbx.SetEndpoint("PJSIP/1003", aritest.Rings())
	pbx.SetEndpoint("PJSIP/trunk", aritest.Behavior{Answer: true})
	return pbx, clk
}

// WaitUntil polls cond; the limit only guards against a hang.
func WaitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	guard := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-guard:
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
