package daemon_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// sentinelConfig has no agents, so the promises stay pending where the test can count them.
const sentinelConfig = `
redis:
  sentinel:
    master_name: callbackd
    addrs: ["127.0.0.1:1"]
  wait_replicas: 1
  wait_timeout: 2s
asterisk:
  - name: pbx
    url: http://127.0.0.1:1/ari
    username: callbackd
    password: callbackd-secret
queues:
  - name: support
`

// The daemon as `callbackd run` builds it from a Sentinel config keeps every promise it made
// through a kill -9 of the Redis primary: the calls before it are on the promoted replica, and
// the calls after it make their promises there.
func TestDaemonKeepsItsPromisesThroughASentinelFailover(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	deployment := redistest.StartSentinel(t, redistest.SentinelOptions{})
	cfg, err := config.Parse([]byte(sentinelConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	cfg.Redis.Sentinel.Addrs = deployment.Addrs()
	rdb, err := daemon.RedisClient(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })

	var mu sync.Mutex
	var made []queue.Job
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clk, Logger: zap.NewNop(), Instance: "test", Listen: "-",
		OnIntake: func(r dialer.IntakeResult) {
			mu.Lock()
			defer mu.Unlock()
			if r.Err != nil {
				t.Errorf("request refused: %v", r.Err)
				return
			}
			made = append(made, r.Job)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	h := httptest.NewServer(d.Handler())
	t.Cleanup(h.Close)
	daemontest.WaitUntil(t, "the daemon to be ready", func() bool { code, _ := get(t, h, "GET", "/readyz", ""); return code == 200 })

	// Each caller reaches voicemail at 1003 and leaves a message: one promise each.
	calls := func(first, n int) {
		t.Helper()
		var wg sync.WaitGroup
		for i := first; i < first+n; i++ {
			c := pbx.Inbound(aritest.InboundCall{From: fmt.Sprintf("+312012345%02d", i), To: "+31205550103", Steps: []aritest.Step{
				aritest.Dial("PJSIP/1003", 10*time.Second, ""),
				aritest.VoiceMail("1003@default", 3*time.Second),
			}})
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.Wait(ctx); err != nil {
					t.Errorf("caller %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		daemontest.WaitUntil(t, "the callers' promises", func() bool { mu.Lock(); defer mu.Unlock(); return len(made) == first+n })
	}
	calls(0, 3)
	unreplicated := func() string {
		_, metrics := get(t, h, "GET", "/metrics", "")
		for _, line := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(line, `callbackd_redis_unreplicated_writes_total{write="enqueue"}`) {
				return strings.TrimSpace(line[strings.LastIndex(line, " "):])
			}
		}
		return "absent"
	}
	if n := unreplicated(); n != "0" {
		t.Fatalf("before the kill, %s promises lack the replica's acknowledgement; want every one acknowledged", n)
	}

	old := deployment.KillPrimary()
	promoted := deployment.AwaitFailover(old)
	calls(3, 2)
	// With its only replica gone, the new primary acknowledges nobody: said, not refused.
	if n := unreplicated(); n != "2" {
		t.Errorf("promises made after the failover reported unreplicated: %s; want 2", n)
	}

	store, err := daemon.NewStore(cfg, promoted.Client(), clk)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, j := range made {
		got, err := store.Get(ctx, j.Ref())
		if err != nil || got.State != queue.StatePending || got.Number != j.Number {
			t.Errorf("promise %d (%s) on the promoted replica: %s %s, %v; want it pending", i, j.ID, got.Number, got.State, err)
		}
	}
}
