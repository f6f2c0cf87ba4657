package main

import (
	"testing"
	"time"
)

// The short chaos run CI makes: one seed, about a minute, two daemons on one Redis and one
// Asterisk, and every fault kind once or twice: kill -9, SIGTERM, a Redis kill -9 and restart,
// an ARI socket drop, a twin with the same instance id. Nothing may be lost, dialled twice or
// left behind, and a killed daemon's promises come back within the lease plus a second. The
// long run (chaos_long_test.go, `make chaos`) has more calls, faults and seeds.
func TestChaosShortRunLosesNothingAndLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes about a minute")
	}
	checkChaos(t, chaosPlan{Seed: 1, Calls: 40, Span: 25 * time.Second, Agents: 6, MaxAttempts: 2,
		Faults: map[faultKind]int{faultKill9: 2, faultSIGTERM: 1, faultRedis: 1, faultARIDrop: 1, faultTwin: 1}})
}
