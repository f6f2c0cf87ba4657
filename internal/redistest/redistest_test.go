package redistest

import (
	"context"
	"fmt"
	stdlog "log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartServesAndRestartKeepsAppendOnlyData(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{AppendOnly: true})
	c := s.Client()
	if err := c.Set(ctx, "promise", "kept", 0).Err(); err != nil {
		t.Fatalf("SET on fresh server: %v", err)
	}
	s.Restart()
	got, err := c.Get(ctx, "promise").Result()
	if err != nil || got != "kept" {
		t.Fatalf("after a kill -9 and restart with AOF, GET promise = %q, %v; want \"kept\"", got, err)
	}
}

func TestStartWithoutPersistenceForgetsOnRestart(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	c := s.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	s.Restart()
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS k after restart without persistence = %d, %v; want 0", n, err)
	}
}

// A wrapper runs the server in its own process: a shell that counts its runs in a file and
// executes redis-server in its place, so PID is the server's (INFO's process_id) and the server
// answers as usual, also after a restart.
func TestAWrapperRunsTheServerInItsProcess(t *testing.T) {
	ctx := context.Background()
	runs := filepath.Join(t.TempDir(), "runs")
	s := Start(t, Options{Wrapper: []string{"sh", "-c", `echo run >> "$0"; exec "$@"`, runs}})
	c := s.Client()
	for i, when := range []string{"after start", "after restart"} {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			t.Fatalf("INFO %s: %v", when, err)
		}
		if !strings.Contains(info, fmt.Sprintf("process_id:%d\r\n", s.PID())) {
			t.Errorf("PID %d %s is not the server's; INFO server: %q", s.PID(), when, info)
		}
		if got, _ := os.ReadFile(runs); strings.Count(string(got), "run") != i+1 {
			t.Errorf("%s the wrapper ran %d times; want %d", when, strings.Count(string(got), "run"), i+1)
		}
		if i == 0 {
			s.Restart()
		}
	}
	s.Stop()
	if s.PID() != 0 {
		t.Errorf("PID after Stop = %d; want 0", s.PID())
	}
}

func TestClusterNodeOwnsEverySlotAndRefusesCrossSlotCommands(t *testing.T) {
	node := Start(t, Options{Cluster: true})
	ctx := context.Background()
	c := node.Client()
	if err := c.MSet(ctx, "{a}:1", "x", "{a}:2", "y").Err(); err != nil {
		t.Fatalf("same-slot MSET refused: %v", err)
	}
	if err := c.MSet(ctx, "{a}:1", "x", "{b}:1", "y").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("cross-slot MSET: %v; want CROSSSLOT", err)
	}
}

func TestAReplicaStartsSyncedAndReceivesThePrimarysWrites(t *testing.T) {
	ctx := context.Background()
	primary := Start(t, Options{})
	if err := primary.Client().Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	replica := Start(t, Options{ReplicaOf: primary.Addr()})
	c := primary.Client()
	if err := c.Set(ctx, "after", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on the primary = %d, %v; want the replica's acknowledgement", n, err)
	}
	for _, k := range []string{"before", "after"} {
		if n, err := replica.Client().Exists(ctx, k).Result(); err != nil || n != 1 {
			t.Errorf("replica EXISTS %s = %d, %v; want 1", k, n, err)
		}
	}
}

// A kill -9 of the primary makes the sentinels promote the replica, with what the primary
// had replicated, and a failover client follows them there.
func TestSentinelPromotesTheReplicaWhenThePrimaryIsKilled(t *testing.T) {
	ctx := context.Background()
	d := StartSentinel(t, SentinelOptions{})
	c := d.Client()
	if err := c.Set(ctx, "promise", "made", 0).Err(); err != nil {
		t.Fatalf("SET through the sentinels: %v", err)
	}
	if n, err := c.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v; want 1", n, err)
	}
	old := d.KillPrimary()
	promoted := d.AwaitFailover(old)
	if promoted == old {
		t.Fatal("the killed primary is still named primary")
	}
	var got string
	var err error
	if !poll(30*time.Second, func() bool { got, err = c.Get(ctx, "promise").Result(); return err == nil }) {
		t.Fatalf("GET through the failover client after the failover: %v", err)
	}
	if got != "made" {
		t.Errorf("GET promise on the promoted replica = %q; want \"made\"", got)
	}
}

// dialLog keeps what go-redis logs.
type dialLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *dialLog) Printf(_ context.Context, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, v...))
}

// A server that takes its time to listen (valgrind takes seconds) is waited for without a
// line of go-redis' dial errors in the benchmark's or test's output.
func TestWaitingForASlowServerLogsNoDialErrors(t *testing.T) {
	log := &dialLog{}
	redis.SetLogger(log)
	t.Cleanup(func() { redis.SetLogger(stdLogger{}) })
	s := Start(t, Options{Wrapper: []string{"sh", "-c", `sleep 1.5; exec "$@"`, "slow"}})
	if err := s.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING after a slow start: %v", err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.lines) > 0 {
		t.Errorf("waiting for the server logged %d lines; the first: %s", len(log.lines), log.lines[0])
	}
}

// stdLogger is go-redis' own default: its lines on stderr.
type stdLogger struct{}

func (stdLogger) Printf(_ context.Context, format string, v ...any) {
	stdlog.Printf(format, v...)
}
