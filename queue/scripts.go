package queue

import (
	"embed"
	"fmt"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/*.lua
var luaFiles embed.FS

// scripts holds one redis.Script per state change. Run sends EVALSHA and falls back to EVAL
// only when the server has not seen the script yet, so a warm store needs one round trip.
type scripts struct {
	enqueue, claim, extend, dialled, connected, complete, retry, cancel, resolve, reclaim, quarantine, expire, erase, emit, adopted, reschedule *redis.Script
	// list, stats, head and schedule only read.
	list, page, stats, head, schedule *redis.Script
}

// loadScripts builds the scripts. strict starts each with a "#!lua" shebang, under which Redis 7
// refuses a script that touches a key outside the slot of its declared keys, even on a
// single-node cluster; the cluster test uses it to prove the key layout. It is off by
// default because Redis 6 does not understand the shebang.
func loadScripts(strict bool) (scripts, error) {
	common, err := luaFiles.ReadFile("scripts/common.lua")
	if err != nil {
		return scripts{}, fmt.Errorf("reading embedded common.lua: %w", err)
	}
	load := func(name string) (*redis.Script, error) {
		body, err := luaFiles.ReadFile("scripts/" + name + ".lua")
		if err != nil {
			return nil, fmt.Errorf("reading embedded %s.lua: %w", name, err)
		}
		src := string(common) + "\n" + string(body)
		if strict {
			src = "#!lua\n" + src
		}
		return redis.NewScript(src), nil
	}
	var s scripts
	for _, e := range []struct {
		name string
		dst  **redis.Script
	}{
		{"enqueue", &s.enqueue}, {"claim", &s.claim}, {"extend", &s.extend}, {"dialled", &s.dialled},
		{"connected", &s.connected}, {"complete", &s.complete}, {"retry", &s.retry},
		{"cancel", &s.cancel}, {"resolve", &s.resolve}, {"reclaim", &s.reclaim}, {"quarantine", &s.quarantine}, {"expire", &s.expire}, {"erase", &s.erase}, {"emit", &s.emit}, {"adopted", &s.adopted}, {"reschedule", &s.reschedule}, {"list", &s.list}, {"page", &s.page},
		{"stats", &s.stats}, {"head", &s.head}, {"schedule", &s.schedule},
	} {
		sc, err := load(e.name)
		if err != nil {
			return scripts{}, err
		}
		*e.dst = sc
	}
	return s, nil
}

func (s scripts) all() []*redis.Script {
	return []*redis.Script{s.enqueue, s.claim, s.extend, s.dialled, s.connected, s.complete, s.retry,
		s.cancel, s.resolve, s.reclaim, s.quarantine, s.expire, s.erase, s.emit, s.adopted, s.reschedule, s.list, s.page, s.stats, s.head, s.schedule}
}

// standaloneScript builds a script that works on keys outside any queue, so common.lua (whose
// KEYS are a queue's) is not prepended.
func standaloneScript(name string) (*redis.Script, error) {
	body, err := luaFiles.ReadFile("scripts/" + name + ".lua")
	if err != nil {
		return nil, fmt.Errorf("reading embedded %s.lua: %w", name, err)
	}
	return redis.NewScript(string(body)), nil
}
