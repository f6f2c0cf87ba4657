package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// A promise whose record in Redis was damaged is moved aside, the operator is told once in
// the log and by the metric, and the queue goes on: the next promise is called back.
func TestABrokenPromiseRecordIsQuarantinedToldOnceAndTheQueueGoesOn(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	pbx.SetEndpoint("PJSIP/1001", aritest.Answers(time.Second)) // Ria takes reception's callbacks
	pbx.SetEndpoint("PJSIP/+31201234502@provider", aritest.AnswersAndPresses(time.Second, "1"))
	cfg, err := config.Parse([]byte(demo.ConfigYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	srv := redistest.Start(t, redistest.Options{})
	rdb := srv.Client()
	core, logs := observer.New(zap.InfoLevel)
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clk, Logger: zap.New(core), Instance: "test", Listen: "-"})
	if err != nil {
		t.Fatal(err)
	}
	// Two promises before the daemon runs; the earlier one loses its record.
	ctx := context.Background()
	now := clk.Now()
	var jobs []queue.Job
	for i, number := range []string{"+31201234501", "+31201234502"} {
		j, _, err := d.Store().Enqueue(ctx, queue.Request{Queue: "reception", Number: number, Reason: queue.ReasonVoicemail,
			Target: "1001", Deadline: now.Add(time.Duration(i+1) * time.Hour), NotBefore: now, MaxAttempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	if err := rdb.HDel(ctx, "callbackd:{reception}:job:"+jobs[0].ID, "deadline", "created").Err(); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-ran })

	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := d.Store().Get(ctx, jobs[1].Ref())
		if err == nil && (j.State == queue.StateConnected || !j.State.Open()) {
			break
		}
		if time.Now().After(deadline) {
			for _, e := range logs.All() {
				t.Logf("%s %v", e.Message, e.ContextMap())
			}
			t.Fatalf("the healthy promise is %s, %v; want it called back and connected", j.State, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	told := logs.FilterMessageSnippet("promise quarantined").All()
	if len(told) != 1 || told[0].ContextMap()["promise"] != jobs[0].ID ||
		!strings.Contains(told[0].ContextMap()["reason"].(string), "missing") {
		t.Errorf("quarantine log lines %v; want exactly one naming %s and what is missing", told, jobs[0].ID)
	}
	h := serve(t, d)
	if _, metrics := get(t, h, "GET", "/metrics", ""); !strings.Contains(metrics, `callbackd_promises_quarantined_total{queue="reception"} 1`) {
		t.Errorf("/metrics does not count the quarantined promise")
	}
}
