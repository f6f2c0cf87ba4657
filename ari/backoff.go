package ari

import (
	"fmt"
	"math"
	"time"
)

// Backoff is the reconnect schedule: Initial, then Multiplier times longer per failed attempt,
// never more than Max, each delay shortened by a random share of up to Jitter so that many
// daemons cut off by one Asterisk restart do not all come back in the same millisecond.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	// Jitter is in [0, 1): 0.2 makes a delay d land in [0.8·d, d].
	Jitter float64
}

// DefaultBackoff is 0.5 s doubling to 30 s with 20 % jitter.
var DefaultBackoff = Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}

func (b Backoff) withDefaults() Backoff {
	if b == (Backoff{}) {
		return DefaultBackoff
	}
	return b
}

func (b Backoff) validate() error {
	switch {
	case b.Initial <= 0:
		return fmt.Errorf("backoff initial %v is not positive", b.Initial)
	case b.Max < b.Initial:
		return fmt.Errorf("backoff max %v is less than initial %v", b.Max, b.Initial)
	case b.Multiplier < 1 || math.IsNaN(b.Multiplier) || math.IsInf(b.Multiplier, 0):
		return fmt.Errorf("backoff multiplier %v is less than 1", b.Multiplier)
	case b.Jitter < 0 || b.Jitter >= 1 || math.IsNaN(b.Jitter):
		return fmt.Errorf("backoff jitter %v is outside [0, 1)", b.Jitter)
	}
	return nil
}

// Delay is the wait before reconnect attempt number attempt (0 for the first retry); r is a
// random number in [0, 1). The jitter only ever shortens the delay, so Max is a real ceiling.
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(attempt))
	if d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.Max)
	}
	if r < 0 {
		r = 0
	}
	if r >= 1 {
		r = math.Nextafter(1, 0)
	}
	return time.Duration(d * (1 - b.Jitter*r))
}
