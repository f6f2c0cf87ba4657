package main

import (
	"testing"
	"time"
)

// The short chaos run CI makes: one seed, about a minute, two daemons on one Redis and one
// Asterisk, and the faults the daemon is known to survive: SIGTERM and restart. Nothing may
// be lost, dialled twice or left behind. The long run (chaos_long_test.go, `make chaos`) adds
// kill -9, Redis kills, ARI drops and the twin.
func TestChaosShortRunLosesNothingAndLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes about a minute")
	}
	checkChaos(t, chaosPlan{Seed: 1, Calls: 40, Span: 25 * time.Second, Agents: 6, MaxAttempts: 2,
		Faults: map[faultKind]int{faultSIGTERM: 2}})
}
