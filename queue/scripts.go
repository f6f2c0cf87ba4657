package queue

import (
	"embed"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/*.lua
var luaFiles embed.FS

// scripts holds one redis.Script per state change. Run sends EVALSHA and falls back to EVAL
// only when the server has not seen the script yet, so a warm store needs one round trip.
type scripts struct {
	enqueue, claim, extend, dialled, connected, complete, retry, cancel, resolve, reclaim, quarantine, expire, erase, emit, adopted, heard, reschedule *redis.Script
	// list, stats, head and schedule only read.
	list, page, stats, head, schedule *redis.Script
}

// prelude is the part of common.lua that a script body needs: every top-level statement but
// two kinds, and of those, the ones the body names or a kept block names: local functions, and
// locals of a single name (a constant table, a key name). Redis runs a script's whole text on
// every call, and defining some twenty functions and tables a script never uses was a sizeable
// share of a short script's time in Redis.
func prelude(common, body string) string {
	type block struct {
		name string // the local function or single local this block defines; "" for any other statement
		text string
	}
	var blocks []block
	lines := strings.SplitAfter(common, "\n")
	for i := 0; i < len(lines); i++ {
		name, ok := strings.CutPrefix(lines[i], "local function ")
		if !ok {
			if name := singleLocal(lines[i]); name != "" {
				// The statement goes on over the indented lines after it.
				j := i
				for j+1 < len(lines) && len(lines[j+1]) > 1 && (lines[j+1][0] == ' ' || lines[j+1][0] == '\t') {
					j++
				}
				blocks = append(blocks, block{name: name, text: strings.Join(lines[i:j+1], "")})
				i = j
				continue
			}
			blocks = append(blocks, block{text: lines[i]})
			continue
		}
		name, _, _ = strings.Cut(name, "(")
		// A top-level function ends at the first "end" in the first column.
		j := i
		for j < len(lines)-1 && strings.TrimRight(lines[j], "\r\n") != "end" {
			j++
		}
		blocks = append(blocks, block{name: name, text: strings.Join(lines[i:j+1], "")})
		i = j
	}
	need := map[string]bool{}
	mark := func(code string) {
		for _, w := range luaNames(code) {
			need[w] = true
		}
	}
	mark(body)
	for _, b := range blocks {
		if b.name == "" {
			mark(b.text)
		}
	}
	for grew := true; grew; {
		grew = false
		for _, b := range blocks {
			if b.name == "" || !need[b.name] {
				continue
			}
			for _, w := range luaNames(b.text) {
				if !need[w] {
					need[w], grew = true, true
				}
			}
		}
	}
	var out strings.Builder
	for _, b := range blocks {
		if b.name == "" || need[b.name] {
			out.WriteString(b.text)
		}
	}
	return out.String()
}

// singleLocal answers the name a top-level "local NAME = ..." line defines, or "" for any
// other line (several names at once are always kept: one may be needed without the others).
func singleLocal(line string) string {
	rest, ok := strings.CutPrefix(line, "local ")
	if !ok {
		return ""
	}
	name, _, ok := strings.Cut(rest, " = ")
	if !ok || name == "" || strings.ContainsAny(name, ", (") {
		return ""
	}
	return name
}

// luaNames lists the identifiers in Lua code, comments left out (strings are not: a name in one
// only keeps a function that might not have been needed).
func luaNames(code string) []string {
	var names []string
	for _, line := range strings.Split(code, "\n") {
		line = stripComment(line)
		start := -1
		for i := 0; i <= len(line); i++ {
			word := i < len(line) && (line[i] == '_' || line[i] >= 'a' && line[i] <= 'z' ||
				line[i] >= 'A' && line[i] <= 'Z' || start >= 0 && line[i] >= '0' && line[i] <= '9')
			switch {
			case word && start < 0:
				start = i
			case !word && start >= 0:
				names = append(names, line[start:i])
				start = -1
			}
		}
	}
	return names
}

// stripComment cuts a line at a "--" that is not inside a quoted string.
func stripComment(line string) string {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote == 0 && c == '-' && i+1 < len(line) && line[i+1] == '-':
			return line[:i]
		}
	}
	return line
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
		src := prelude(string(common), string(body)) + "\n" + string(body)
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
		{"cancel", &s.cancel}, {"resolve", &s.resolve}, {"reclaim", &s.reclaim}, {"quarantine", &s.quarantine}, {"expire", &s.expire}, {"erase", &s.erase}, {"emit", &s.emit}, {"adopted", &s.adopted}, {"heard", &s.heard}, {"reschedule", &s.reschedule}, {"list", &s.list}, {"page", &s.page},
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
		s.cancel, s.resolve, s.reclaim, s.quarantine, s.expire, s.erase, s.emit, s.adopted, s.heard, s.reschedule, s.list, s.page, s.stats, s.head, s.schedule}
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
