package queue

import (
	"context"
	"crypto/sha1"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/*.lua
var luaFiles embed.FS

// scripts holds one script per state change, each a function of the store's library and a
// redis.Script with the same code (see script).
type scripts struct {
	enqueue, claim, extend, dialled, connected, complete, retry, cancel, resolve, reclaim, quarantine, expire, erase, emit, adopted, heard, reschedule *script
	// list, page, stats, head and schedule only read.
	list, page, stats, head, schedule *script
	lib                               *library
}

// readOnly are the scripts registered with the no-writes flag: Redis runs them even when it
// is out of memory, as it runs a script that has not written yet.
var readOnly = map[string]bool{"list": true, "page": true, "stats": true, "head": true, "schedule": true}

// library is every queue script as one Redis function library, for a server with Functions
// (Redis 7). Loaded once, it defines common.lua's functions, tables and key names once, where
// a script defines them again on every call: about a tenth of the instructions Redis runs for
// a hot script. Its name and its functions' carry a hash of its code, so daemons of two versions
// that share a Redis each call their own.
type library struct {
	name, code string
	// on: the library is loaded and calls go to it; off: they go to the scripts (Redis 6, a
	// user without the FUNCTION command, or before Load).
	on atomic.Bool
	// why is what FUNCTION LOAD answered when Load fell back to scripts.
	why atomic.Pointer[error]
}

// script is one queue script: an FCALL of its function while the library is on, an EVALSHA
// (EVAL when the server has not seen it) otherwise.
type script struct {
	fn  string
	sc  *redis.Script
	lib *library
}

// functionMissing is the error of an FCALL whose function the server does not have: a server
// restarted without persistence, FUNCTION FLUSH, a cluster node added since Load.
func functionMissing(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Function not found")
}

// Run runs the script on c. A function gone from the server runs this call as a script and
// is loaded again for the next; an FCALL the ACL user may not send turns the library off.
func (s *script) Run(ctx context.Context, c redis.UniversalClient, keys []string, args ...any) *redis.Cmd {
	if s.lib.on.Load() {
		cmd := c.FCall(ctx, s.fn, keys, args...)
		if !s.lib.missed(ctx, c, cmd.Err()) {
			return cmd
		}
	}
	return s.sc.Run(ctx, c, keys, args...)
}

// missed answers whether an FCALL's err means the call must be sent as a script instead: the
// function is not on the server (the library is loaded again), or the user may not call
// functions (the library is turned off: an ACL may allow FUNCTION LOAD but not FCALL).
func (l *library) missed(ctx context.Context, c redis.UniversalClient, err error) bool {
	switch {
	case functionMissing(err):
		_ = l.load(ctx, c)
		return true
	case redis.HasErrorPrefix(err, "NOPERM"):
		err = fmt.Errorf("calling the queue scripts' function library %s: %w", l.name, err)
		l.why.Store(&err)
		l.on.Store(false)
		return true
	}
	return false
}

// load sends the library to the server, to every primary of a cluster; it answers what
// FUNCTION LOAD answered and turns the library on or off by it.
func (l *library) load(ctx context.Context, c redis.UniversalClient) error {
	send := func(ctx context.Context, n redis.Cmdable) error {
		return n.FunctionLoadReplace(ctx, l.code).Err()
	}
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return send(ctx, n) })
	} else {
		err = send(ctx, c)
	}
	if err != nil {
		err = fmt.Errorf("loading the queue scripts as function library %s: %w", l.name, err)
		l.why.Store(&err)
	}
	l.on.Store(err == nil)
	return err
}

// topStatement is a statement of common.lua outside its functions: a line in the first
// column and the indented lines that go on with it.
type topStatement struct {
	line       int    // its first line, from 1
	text, name string // name: the single local it defines, "" for any other statement
	multiline  bool
}

// topStatements splits common.lua into its top-level statements, functions left out.
func topStatements(common string) []topStatement {
	var out []topStatement
	lines := strings.Split(common, "\n")
	for i := 0; i < len(lines); i++ {
		if lines[i] == "" || lines[i][0] == ' ' || lines[i][0] == '\t' || strings.HasPrefix(lines[i], "--") {
			continue
		}
		if strings.HasPrefix(lines[i], "local function ") {
			for i < len(lines)-1 && strings.TrimRight(lines[i], "\r") != "end" {
				i++
			}
			continue
		}
		j := i
		for j+1 < len(lines) && len(lines[j+1]) > 1 && (lines[j+1][0] == ' ' || lines[j+1][0] == '\t') {
			j++
		}
		out = append(out, topStatement{line: i + 1, text: strings.Join(lines[i:j+1], "\n"),
			name: singleLocal(lines[i]), multiline: j > i})
		i = j
	}
	return out
}

// perCall names the statements of common.lua that a library runs on every call rather than
// once: the single locals whose value comes from the call's KEYS or ARGV, directly or through
// another such local. byKeys are those that depend on KEYS alone, which a call whose KEYS[1]
// is the last call's need not work out again. Any other top-level statement that reads the
// call is an error: a library runs it once, at FUNCTION LOAD, when there is no call.
func perCall(common string) (order []string, byKeys map[string]bool, assign map[string]string, err error) {
	byKeys, assign = map[string]bool{}, map[string]string{}
	byArgs := map[string]bool{}
	for _, st := range topStatements(common) {
		k, a := false, false
		for _, w := range luaNames(st.text) {
			k = k || w == "KEYS" || byKeys[w]
			a = a || w == "ARGV" || byArgs[w]
		}
		if !k && !a {
			continue
		}
		switch {
		case st.name == "":
			return nil, nil, nil, fmt.Errorf("common.lua line %d uses the call's KEYS or ARGV outside a single local: %q", st.line, st.text)
		case st.multiline:
			return nil, nil, nil, fmt.Errorf("common.lua line %d: a local made from KEYS or ARGV must fit one line: %q", st.line, st.text)
		case a:
			byArgs[st.name] = true
		case strings.Count(st.text, "KEYS[") != strings.Count(st.text, "KEYS[1]"):
			// begin() works the key names out again only when KEYS[1] changes.
			return nil, nil, nil, fmt.Errorf("common.lua line %d: a local made from KEYS may read only KEYS[1]: %q", st.line, st.text)
		default:
			byKeys[st.name] = true
		}
		_, assign[st.name], _ = strings.Cut(st.text, " = ")
		order = append(order, st.name)
	}
	return order, byKeys, assign, nil
}

// buildLibrary makes the library of bodies (script name -> its text): common.lua whole, its
// per-call locals declared in place and given their values by begin(), and each body the
// function callbackd_<hash>_<name>, whose KEYS and ARGV are the call's.
func buildLibrary(common string, names []string, bodies map[string]string) (*library, error) {
	h := sha1.New()
	h.Write([]byte(common))
	for _, n := range names {
		h.Write([]byte(n + "\x00" + bodies[n]))
	}
	name := "callbackd_" + hex.EncodeToString(h.Sum(nil))[:12]
	order, byKeys, assign, err := perCall(common)
	if err != nil {
		return nil, err
	}
	per := map[string]bool{}
	for _, n := range order {
		per[n] = true
	}
	var b strings.Builder
	b.WriteString("#!lua name=" + name + "\n")
	b.WriteString("local KEYS, ARGV\n")
	// A per-call local is declared where common.lua makes it, so the functions after it see it.
	for _, line := range strings.Split(common, "\n") {
		if n := singleLocal(line); per[n] {
			line = "local " + n
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("local function begin(keys, args)\n  KEYS, ARGV = keys, args\n")
	b.WriteString("  if keys[1] ~= K_JOBP then\n")
	for _, n := range order {
		if byKeys[n] {
			b.WriteString("    " + n + " = " + assign[n] + "\n")
		}
	}
	b.WriteString("  end\n")
	for _, n := range order {
		if !byKeys[n] {
			b.WriteString("  " + n + " = " + assign[n] + "\n")
		}
	}
	b.WriteString("end\n")
	for _, n := range names {
		flags := ""
		if readOnly[n] {
			flags = ", flags = {'no-writes'}"
		}
		fmt.Fprintf(&b, "redis.register_function{function_name = '%s_%s'%s, callback = function(keys, args)\nbegin(keys, args)\n%s\nend}\n",
			name, n, flags, bodies[n])
	}
	if !byKeys["K_JOBP"] {
		return nil, errors.New("common.lua no longer names the job-key prefix K_JOBP from KEYS[1], which begin() caches by")
	}
	return &library{name: name, code: b.String()}, nil
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

// luaConstants is the Lua for the Go constants the scripts use, put before common.lua: the scripts
// cannot disagree with the Go code, and a constant is not an argument that every call sends and
// Redis parses. A constant given to a command is a string (Redis formats a Lua number again on
// every call).
func luaConstants() string {
	var final []string
	for _, st := range States() {
		if !st.Open() {
			final = append(final, string(st)+" = true")
		}
	}
	return fmt.Sprintf(`-- Put here by scripts.go (luaConstants) from the queue package's Go constants.
local PROMOTE_BATCH = %[1]d
local PROMOTE_BATCH_S = '%[1]d'
local PREFER_LAST_S = '%[2]d'
local REQUESTED_MS = '%[3]d'
local MAX_FIELD_LENGTH = %[4]d
local WINDOW_BUCKET_MS = %[5]d
local FINAL = {%[6]s}
`, promoteBatch, preferWindow-1, requestedMemory.Milliseconds(), maxFieldLength, outcomeBucket.Milliseconds(),
		strings.Join(final, ", "))
}

// loadScripts builds the scripts. strict starts each with a "#!lua" shebang, under which Redis 7
// refuses a script that touches a key outside the slot of its declared keys, even on a
// single-node cluster; the cluster test uses it to prove the key layout. It is off by
// default because Redis 6 does not understand the shebang.
func loadScripts(strict bool) (scripts, error) {
	file, err := luaFiles.ReadFile("scripts/common.lua")
	if err != nil {
		return scripts{}, fmt.Errorf("reading embedded common.lua: %w", err)
	}
	common := []byte(luaConstants() + string(file))
	bodies := map[string]string{}
	var names []string
	load := func(name string) (*script, error) {
		body, err := luaFiles.ReadFile("scripts/" + name + ".lua")
		if err != nil {
			return nil, fmt.Errorf("reading embedded %s.lua: %w", name, err)
		}
		bodies[name] = string(body)
		names = append(names, name)
		src := prelude(string(common), string(body)) + "\n" + string(body)
		if strict {
			src = "#!lua\n" + src
		}
		return &script{fn: name, sc: redis.NewScript(src)}, nil
	}
	var s scripts
	for _, e := range []struct {
		name string
		dst  **script
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
	lib, err := buildLibrary(string(common), names, bodies)
	if err != nil {
		return scripts{}, err
	}
	s.lib = lib
	for _, sc := range s.all() {
		sc.fn, sc.lib = lib.name+"_"+sc.fn, lib
	}
	return s, nil
}

func (s scripts) all() []*script {
	return []*script{s.enqueue, s.claim, s.extend, s.dialled, s.connected, s.complete, s.retry,
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
