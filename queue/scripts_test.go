package queue

import (
	"strings"
	"testing"
)

func TestPreludeKeepsWhatAScriptCalls(t *testing.T) {
	common := `-- shared
local K = KEYS[1]
local LIMIT = 3
local A, B = ARGV[1], ARGV[2]
local FIELDS = {'a',
  'b', K}
local function first()
  return FIELDS[1]
end
local function fail(code)
  return {'err', code}
end
local function fetch(k)
  return redis.call('HGETALL', k)
end
local function fenced(k)
  -- fenced reads through fetch; quarantine is only named in this comment
  local j = fetch(k)
  if not j then
    return fail('NOTFOUND')
  end
  return j
end
local function quarantine(id)
  return 'x -- not a comment: ' .. fail(id)
end
local function broken(id)
  return quarantine(id)
end
`
	tests := []struct {
		name       string
		body       string
		kept, left []string
	}{
		{"a function and what it calls, in turn", "return fenced(K)",
			[]string{"fenced", "fetch", "fail", "local K = KEYS[1]"}, []string{"quarantine", "broken", "LIMIT", "FIELDS"}},
		{"a name in a comment keeps nothing", "-- broken(id) is not needed\nreturn 1",
			[]string{"local A, B = ARGV[1], ARGV[2]"}, []string{"fenced", "fetch", "fail", "quarantine", "broken", "K", "LIMIT", "FIELDS"}},
		{"a call after a \"--\" inside a string still counts", "return broken('a')",
			[]string{"broken", "quarantine", "fail"}, []string{"fenced", "fetch"}},
		{"a constant the body names is kept whole, over its lines", "return LIMIT",
			[]string{"local LIMIT = 3"}, []string{"FIELDS", "fail"}},
		{"a constant a kept function names is kept, and what it names", "return first()",
			[]string{"local FIELDS = {'a',\n  'b', K}", "local K = KEYS[1]", "first"}, []string{"LIMIT", "fail"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := prelude(common, tt.body)
			for _, k := range tt.kept {
				if k != "" && !strings.Contains(got, k) {
					t.Errorf("prelude lost %q:\n%s", k, got)
				}
			}
			for _, l := range tt.left {
				if strings.Contains(got, "local function "+l+"(") || strings.Contains(got, "local "+l+" = ") {
					t.Errorf("prelude kept %s:\n%s", l, got)
				}
			}
		})
	}
}

// Every real script, pruned, still defines each common.lua function and single local it names.
func TestPreludeOfEveryScriptDefinesWhatItNames(t *testing.T) {
	common, err := luaFiles.ReadFile("scripts/common.lua")
	if err != nil {
		t.Fatal(err)
	}
	var funcs, locals []string
	for _, line := range strings.Split(string(common), "\n") {
		if name, ok := strings.CutPrefix(line, "local function "); ok {
			name, _, _ = strings.Cut(name, "(")
			funcs = append(funcs, name)
		}
		if name := singleLocal(line); name != "" {
			locals = append(locals, name)
		}
	}
	if len(locals) < 10 {
		t.Fatalf("found %d single locals in common.lua (%v); the parse is wrong", len(locals), locals)
	}
	entries, err := luaFiles.ReadDir("scripts")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		body, err := luaFiles.ReadFile("scripts/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		src := prelude(string(common), string(body)) + "\n" + string(body)
		names := map[string]bool{}
		for _, w := range luaNames(src) {
			names[w] = true
		}
		for _, f := range funcs {
			if names[f] && !strings.Contains(src, "local function "+f+"(") {
				t.Errorf("%s names %s but its prelude does not define it", e.Name(), f)
			}
		}
		for _, l := range locals {
			if names[l] && !strings.Contains(src, "\nlocal "+l+" = ") {
				t.Errorf("%s names %s but its prelude does not define it", e.Name(), l)
			}
		}
	}
}
