package queue

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/redistest"
)

// calls is how many times Redis ran each of the script commands since the last reset.
func calls(t *testing.T, rdb *redis.Client) map[string]int {
	t.Helper()
	s, err := rdb.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, line := range strings.Split(s, "\n") {
		for _, c := range []string{"fcall", "evalsha", "eval"} {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+c+":calls="); ok {
				v, _, _ := strings.Cut(rest, ",")
				k, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("commandstats %q: %v", line, err)
				}
				n[c] = k
			}
		}
	}
	return n
}

// lifetimeOn runs one promise of queue q from enqueue to kept and checks what each step
// answers: the per-call key names a library caches must be the queue's own.
func lifetimeOn(t *testing.T, f fixture, q, number string) {
	t.Helper()
	r := request(number)
	r.Queue = q
	j := f.enqueue(t, r)
	c, err := f.s.Claim(f.ctx, q, ClaimOptions{Worker: "w1", Lease: time.Minute})
	if err != nil || c.ID != j.ID || c.Queue != q {
		t.Fatalf("Claim(%s) = %+v, %v; want %s of %s", q, c, err, j.ID, q)
	}
	if _, err := f.s.MarkConnected(f.ctx, c.Ref(), c.Lease.Token, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	done, err := f.s.Complete(f.ctx, c.Ref(), c.Lease.Token, StateKept, "")
	if err != nil || done.State != StateKept || done.Queue != q || done.Number != number {
		t.Fatalf("Complete = %+v, %v; want %s kept in %s", done, err, number, q)
	}
}

func TestALoadedStoreRunsItsFunctionsNotScripts(t *testing.T) {
	if scriptsOnly {
		t.Skip("CALLBACKD_QUEUE_SCRIPTS: the library is not loaded")
	}
	f := newFixture(t)
	wantErr(t, f.rdb.ConfigResetStat(f.ctx).Err(), nil)
	// Two queues in turn: each call names its queue's keys afresh from its own KEYS[1].
	lifetimeOn(t, f, testQueue, alice)
	lifetimeOn(t, f, otherQ, bob)
	lifetimeOn(t, f, testQueue, bob)
	got := calls(t, f.rdb)
	if got["fcall"] != 12 || got["evalsha"] != 0 || got["eval"] != 0 {
		t.Fatalf("three lifetimes ran %v; want 12 FCALLs and no script", got)
	}
}

func TestAStoreWhoseUserMayNotUseFunctionsRunsScripts(t *testing.T) {
	for _, tc := range []struct {
		name, deny string
	}{
		{"FUNCTION refused: Load falls back", "-function"},
		{"FCALL refused: the first call falls back", "-fcall"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			admin := srv.Client()
			ctx := t.Context()
			wantErr(t, admin.Do(ctx, "ACL", "SETUSER", "callbackd", "on", ">pw", "~*", "&*", "+@all", tc.deny).Err(), nil)
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "callbackd", Password: "pw"})
			t.Cleanup(func() { _ = rdb.Close() })
			f := newFixture(t)
			s, err := New(rdb, Options{Clock: f.clk, Queues: []string{testQueue, otherQ}})
			wantErr(t, err, nil)
			wantErr(t, s.Load(ctx), nil)
			wantErr(t, admin.ConfigResetStat(ctx).Err(), nil)
			lifetimeOn(t, fixture{s: s, clk: f.clk, rdb: rdb, ctx: ctx}, testQueue, alice)
			on, why := s.Functions()
			if on || why == nil || !strings.Contains(why.Error(), "NOPERM") {
				t.Fatalf("Functions() = %v, %v; want scripts, with Redis' refusal as the reason", on, why)
			}
			// An FCALL the ACL refuses is not run, so not counted among the calls.
			if got := calls(t, admin); got["fcall"] != 0 || got["evalsha"] != 4 {
				t.Fatalf("a lifetime ran %v; want its four steps as scripts", got)
			}
		})
	}
}

func TestAFunctionLibraryGoneFromRedisIsLoadedAgainAndNoCallFails(t *testing.T) {
	if scriptsOnly {
		t.Skip("CALLBACKD_QUEUE_SCRIPTS: the library is not loaded")
	}
	for _, tc := range []struct {
		name     string
		replicas int // Enqueue with a replica wait goes by the pipelined path
	}{{"plain calls", 0}, {"a write that waits for replicas", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			s, err := New(f.rdb, Options{Clock: f.clk, Queues: []string{testQueue, otherQ},
				WaitReplicas: tc.replicas, WaitTimeout: time.Millisecond})
			wantErr(t, err, nil)
			f.s = s
			f.load(t)
			// A restart without persistence, or an operator's FUNCTION FLUSH.
			wantErr(t, f.rdb.FunctionFlush(f.ctx).Err(), nil)
			lifetimeOn(t, f, testQueue, alice)
			libs, err := f.rdb.FunctionList(f.ctx, redis.FunctionListQuery{}).Result()
			if err != nil || len(libs) != 1 || libs[0].Name != s.sc.lib.name {
				t.Fatalf("libraries after the flush: %+v, %v; want %s loaded again", libs, err, s.sc.lib.name)
			}
			if on, why := s.Functions(); !on {
				t.Fatalf("Functions() = false (%v) after the library was loaded again", why)
			}
			wantErr(t, f.rdb.ConfigResetStat(f.ctx).Err(), nil)
			lifetimeOn(t, f, testQueue, bob)
			if got := calls(t, f.rdb); got["fcall"] != 4 || got["evalsha"]+got["eval"] != 0 {
				t.Fatalf("the next lifetime ran %v; want its four calls as FCALLs", got)
			}
		})
	}
}

func TestTwoVersionsOfTheLibraryLiveSideBySide(t *testing.T) {
	common, err := luaFiles.ReadFile("scripts/common.lua")
	wantErr(t, err, nil)
	body := "return {'ok', QUEUE}"
	older, err := buildLibrary(string(common), []string{"probe"}, map[string]string{"probe": body})
	wantErr(t, err, nil)
	newer, err := buildLibrary(string(common), []string{"probe"}, map[string]string{"probe": body + " -- changed"})
	wantErr(t, err, nil)
	if older.name == newer.name {
		t.Fatalf("two versions of a script share the library name %s", older.name)
	}
	f := newFixture(t)
	for _, l := range []*library{older, newer} {
		wantErr(t, l.load(f.ctx, f.rdb), nil)
	}
	for _, l := range []*library{older, newer} {
		v, err := f.rdb.FCall(f.ctx, l.name+"_probe", []string{"callbackd:{sales}:job:"}, "1", "2", testQueue).StringSlice()
		if err != nil || len(v) != 2 || v[1] != testQueue {
			t.Fatalf("%s_probe = %v, %v; want each version's function still there", l.name, v, err)
		}
	}
}

func TestALibraryRefusesCommonCodeThatReadsTheCallAtLoad(t *testing.T) {
	for _, tc := range []struct{ name, common, want string }{
		{"a top-level statement reading ARGV", "local NOW = tonumber(ARGV[1])\nredis.log(redis.LOG_NOTICE, ARGV[1])\n", "outside a single local"},
		{"a local of several names from KEYS", "local K_JOBP = KEYS[1]\nlocal a, b = KEYS[2], KEYS[3]\n", "outside a single local"},
		{"a per-call local over two lines", "local K_JOBP = KEYS[1]\nlocal NOW = tonumber(\n  ARGV[1])\n", "must fit one line"},
		{"a key name from the call's second key", "local K_JOBP = KEYS[1]\nlocal K_QUAR = KEYS[2]\n", "only KEYS[1]"},
		{"no job-key prefix", "local NOW = tonumber(ARGV[1])\n", "K_JOBP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := buildLibrary(tc.common, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("buildLibrary = %v; want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestTheReadingFunctionsStillAnswerWhenRedisIsOutOfMemory(t *testing.T) {
	if scriptsOnly {
		t.Skip("CALLBACKD_QUEUE_SCRIPTS: the library is not loaded")
	}
	f := newFixture(t)
	j := f.enqueue(t, request(alice))
	// Any memory in use is over the limit: every write is refused from here on.
	wantErr(t, f.rdb.ConfigSet(f.ctx, "maxmemory-policy", "noeviction").Err(), nil)
	wantErr(t, f.rdb.ConfigSet(f.ctx, "maxmemory", "1").Err(), nil)
	t.Cleanup(func() { _ = f.rdb.ConfigSet(f.ctx, "maxmemory", "0").Err() })
	if _, _, err := f.s.Enqueue(f.ctx, request(bob)); err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("Enqueue over maxmemory = %v; want Redis' OOM refusal", err)
	}
	jobs, err := f.s.List(f.ctx, testQueue, ListOptions{})
	if err != nil || len(jobs) != 1 || jobs[0].ID != j.ID {
		t.Fatalf("List over maxmemory = %v, %v; want the one promise", jobs, err)
	}
	if _, err := f.s.Stats(f.ctx, testQueue); err != nil {
		t.Fatalf("Stats over maxmemory: %v", err)
	}
	if _, ok, err := f.s.Head(f.ctx, testQueue); err != nil || !ok {
		t.Fatalf("Head over maxmemory = %v, %v; want the due promise", ok, err)
	}
}
