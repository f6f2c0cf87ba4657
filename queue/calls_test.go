package queue

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
)

const testAsterisk = "02:fc:00:00:00:01"

func newCallMemory(t *testing.T, rdb redis.UniversalClient, clk clock.Clock, ttl time.Duration) *CallMemory {
	t.Helper()
	m := NewCallMemory(rdb, CallMemoryOptions{Clock: clk, TTL: ttl})
	if m.err != nil {
		t.Fatal(m.err)
	}
	return m
}

func keptCalls(t *testing.T, m *CallMemory) map[string]string {
	t.Helper()
	calls, refused, err := m.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(refused) > 0 {
		t.Fatalf("Load refused %v", refused)
	}
	out := map[string]string{}
	for _, c := range calls {
		out[c.AsteriskID+" "+c.LinkedID] = string(c.Record)
	}
	return out
}

// What is noted is written by one Flush, the latest record of each call only, and read back
// by a memory of another process on the same Redis.
func TestCallMemoryKeepsTheLatestRecordOfEachCall(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	clk := clock.NewFake(t0)
	ctx := context.Background()
	steps := []struct {
		name string
		do   func(m *CallMemory)
		want map[string]string
	}{
		{"a call kept", func(m *CallMemory) { m.Keep(testAsterisk, "1.1", []byte(`one`)) },
			map[string]string{testAsterisk + " 1.1": "one"}},
		{"rewritten twice before a flush: the latest wins", func(m *CallMemory) {
			m.Keep(testAsterisk, "1.1", []byte(`two`))
			m.Keep(testAsterisk, "1.1", []byte(`three`))
			m.Keep("other-pbx", "1.1", []byte(`same linkedid, another Asterisk`))
		}, map[string]string{testAsterisk + " 1.1": "three", "other-pbx 1.1": "same linkedid, another Asterisk"}},
		{"kept then dropped before a flush: gone", func(m *CallMemory) {
			m.Keep(testAsterisk, "2.1", []byte(`short`))
			m.Drop(testAsterisk, "2.1")
			m.Drop("other-pbx", "1.1")
		}, map[string]string{testAsterisk + " 1.1": "three"}},
	}
	writer := newCallMemory(t, rdb, clk, time.Hour)
	for _, s := range steps {
		s.do(writer)
		if err := writer.Flush(ctx); err != nil {
			t.Fatalf("%s: Flush: %v", s.name, err)
		}
		if writer.Pending() != 0 {
			t.Fatalf("%s: %d notes left after a flush", s.name, writer.Pending())
		}
		reader := newCallMemory(t, rdb, clk, time.Hour)
		if got := keptCalls(t, reader); !maps.Equal(got, s.want) {
			t.Errorf("%s: loaded %v; want %v", s.name, got, s.want)
		}
	}
}

// A call no daemon saw end leaves nothing for ever: its record expires TTL after its last
// write on Redis' clock, and Load, on the caller's clock, neither returns it nor keeps its
// index entry once that time is past.
func TestCallMemoryForgetsAnAbandonedCallAfterItsTTL(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	clk := clock.NewFake(t0)
	ctx := context.Background()
	m := newCallMemory(t, rdb, clk, time.Hour)
	m.Keep(testAsterisk, "1.1", []byte(`abandoned`))
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	key := "callbackd:call:" + testAsterisk + ":1.1"
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("record expires in %v; want within the hour's TTL", ttl)
	}
	clk.Advance(30 * time.Minute)
	m.Keep(testAsterisk, "2.1", []byte(`younger`))
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(31 * time.Minute) // the first is past its TTL, the second is not
	if got := keptCalls(t, m); !maps.Equal(got, map[string]string{testAsterisk + " 2.1": "younger"}) {
		t.Errorf("loaded %v; want only the call written within the TTL", got)
	}
	if members := rdb.ZRange(ctx, "callbackd:calls", 0, -1).Val(); !slices.Equal(members, []string{testAsterisk + " 2.1"}) {
		t.Errorf("index after Load = %v; want the stale entry gone", members)
	}

	// On Redis' own clock: a record with a one-second TTL is gone a second later.
	short := newCallMemory(t, rdb, clk, time.Second)
	short.Keep(testAsterisk, "3.1", []byte(`brief`))
	if err := short.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	key = "callbackd:call:" + testAsterisk + ":3.1"
	waitFor(t, "the record to expire in Redis", func() bool { return rdb.Exists(ctx, key).Val() == 0 })
	if got := keptCalls(t, short); got[testAsterisk+" 3.1"] != "" {
		t.Errorf("an expired record was loaded: %v", got)
	}
}

// A broken entry (an index member that names no call, a record of the wrong type) is refused
// with an error naming it, and the calls beside it are still read back.
func TestCallMemoryRefusesABrokenEntryAndReadsTheOthers(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	clk := clock.NewFake(t0)
	ctx := context.Background()
	m := newCallMemory(t, rdb, clk, time.Hour)
	m.Keep(testAsterisk, "1.1", []byte(`good`))
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	later := float64(t0.Add(time.Hour).UnixMilli())
	rdb.ZAdd(ctx, "callbackd:calls", redis.Z{Score: later, Member: "no-linkedid"})
	rdb.ZAdd(ctx, "callbackd:calls", redis.Z{Score: later, Member: testAsterisk + " 9.9"})
	rdb.HSet(ctx, "callbackd:call:"+testAsterisk+":9.9", "not", "a string")
	calls, refused, err := m.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || string(calls[0].Record) != "good" {
		t.Errorf("loaded %+v; want the good call", calls)
	}
	wants := []string{`call index entry "no-linkedid" is not`, "call 9.9 of asterisk " + testAsterisk + ": reading callbackd:call:" + testAsterisk + ":9.9: WRONGTYPE"}
	if len(refused) != len(wants) {
		t.Fatalf("refused %v; want %d problems", refused, len(wants))
	}
	for i, w := range wants {
		if !errors.Is(refused[i], ErrInvalid) || !strings.Contains(refused[i].Error(), w) {
			t.Errorf("problem %d = %v; want ErrInvalid saying %q", i, refused[i], w)
		}
	}
	if got := rdb.HGet(ctx, "callbackd:call:"+testAsterisk+":9.9", "not").Val(); got != "a string" {
		t.Errorf("the broken record was changed (%q): a refusal must change nothing", got)
	}
}

// While Redis is down, Keep and Drop return at once and the notes wait, one per call; Run
// writes them when Redis is back.
func TestCallMemoryWaitsForRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rdb := srv.Client()
	clk := clock.NewFake(t0)
	failures := make(chan error, 100)
	m := NewCallMemory(rdb, CallMemoryOptions{Clock: clk, Retry: time.Millisecond, RetryMax: time.Millisecond,
		OnError: func(err error) {
			select {
			case failures <- err:
			default:
			}
		}})
	srv.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := 0; i < 3; i++ {
		m.Keep(testAsterisk, "1.1", []byte{byte('a' + i)})
	}
	m.Keep(testAsterisk, "2.1", []byte(`ended`))
	m.Drop(testAsterisk, "2.1")
	err := <-failures
	if !strings.Contains(err.Error(), "writing") {
		t.Errorf("failure reported as %v", err)
	}
	if n := m.Pending(); n != 2 {
		t.Errorf("%d notes wait; want one per call (2)", n)
	}
	srv.Restart()
	// The fake clock only moves when told: the retry waits on it.
	waitFor(t, "the notes to be written", func() bool { clk.Advance(time.Millisecond); return m.Pending() == 0 })
	if got := keptCalls(t, m); !maps.Equal(got, map[string]string{testAsterisk + " 1.1": "c"}) {
		t.Errorf("after Redis came back: %v; want the latest record of the live call", got)
	}
}

// A write Redis has not answered yet still waits: Pending counts its calls until the reply,
// so nobody reads "nothing pending" while the records are not stored (the CI failure of
// TestCallMemoryWaitsForRedis, where the check raced a flush in flight).
func TestCallMemoryCountsAWriteInFlightAsPending(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	// entered holds one signal: the flush may reach the hook before this goroutine waits on it.
	entered, release := make(chan struct{}, 1), make(chan struct{})
	rdb.AddHook(holdPipelines{entered, release})
	m := newCallMemory(t, rdb, clock.NewFake(t0), time.Hour)
	m.Keep(testAsterisk, "1.1", []byte(`one`))
	flushed := make(chan error, 1)
	go func() { flushed <- m.Flush(context.Background()) }()
	<-entered
	if n := m.Pending(); n != 1 {
		t.Errorf("during the write Pending = %d; want 1 (the call is not stored yet)", n)
	}
	m.Keep(testAsterisk, "1.1", []byte(`two`))
	if n := m.Pending(); n != 1 {
		t.Errorf("a newer note of the call in flight: Pending = %d; want 1 (one per call)", n)
	}
	close(release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if n := m.Pending(); n != 1 {
		t.Errorf("after the write Pending = %d; want 1 (the newer note)", n)
	}
}

// holdPipelines stops every pipeline until release is closed, telling entered first (without
// waiting: entered needs room for the signal).
type holdPipelines struct{ entered, release chan struct{} }

func (h holdPipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h holdPipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h holdPipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		select {
		case h.entered <- struct{}{}:
		default:
		}
		<-h.release
		return next(ctx, cmds)
	}
}
