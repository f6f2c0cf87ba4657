//go:build chaos

package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The long chaos run (`make chaos`): every fault kind, a few hundred calls, one subtest per
// seed. CHAOS_SEEDS (comma-separated, default 1,2,3) and CHAOS_CALLS (default 200) change it;
// CHAOS_FAULTS lists the fault kinds to inject (default all: kill9,sigterm,redis,ari,twin).
func TestChaosLong(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if v := os.Getenv("CHAOS_SEEDS"); v != "" {
		seeds = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
			if err != nil {
				t.Fatalf("CHAOS_SEEDS=%q: %v", v, err)
			}
			seeds = append(seeds, n)
		}
	}
	calls := 200
	if v := os.Getenv("CHAOS_CALLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("CHAOS_CALLS=%q: %v", v, err)
		}
		calls = n
	}
	faults := map[faultKind]int{faultKill9: 6, faultSIGTERM: 2, faultRedis: 3, faultARIDrop: 3, faultTwin: 1}
	if v := os.Getenv("CHAOS_FAULTS"); v != "" {
		names := map[string]faultKind{"kill9": faultKill9, "sigterm": faultSIGTERM, "redis": faultRedis, "ari": faultARIDrop, "twin": faultTwin}
		chosen := map[faultKind]int{}
		for _, n := range strings.Split(v, ",") {
			k, ok := names[strings.TrimSpace(n)]
			if !ok {
				t.Fatalf("CHAOS_FAULTS=%q: unknown fault %q (kill9, sigterm, redis, ari, twin)", v, n)
			}
			chosen[k] = faults[k]
		}
		faults = chosen
	}
	for _, seed := range seeds {
		t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) {
			// The span grows with the calls so that eight agents can keep up.
			checkChaos(t, chaosPlan{Seed: seed, Calls: calls, Span: time.Duration(calls) * 600 * time.Millisecond,
				Agents: 8, MaxAttempts: 3, Faults: faults})
		})
	}
}
