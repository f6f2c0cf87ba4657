package daemon

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// pipelineConfig reconnects only after a minute, so a test can let a whole call end while the
// daemon is not listening.
const pipelineConfig = `
asterisk:
  - name: pbx
    url: http://127.0.0.1:1/ari
    username: callbackd
    password: callbackd-secret
    reconnect: {initial: 60s, max: 60s}
queues:
  - name: support
`

// The whole detection path as production wires it — fake Asterisk over HTTP/WebSocket, the
// connection manager, the detector, the intake and a real redis-server — survives an events
// socket drop: a call that ended while nobody listened is closed out by the resync after the
// reconnect, and calls after the reconnect are processed as usual.
func TestPipelineClosesOutACallThatEndedDuringASocketDrop(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)

	cfg, err := config.Parse([]byte(pipelineConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	rdb := redistest.Start(t, redistest.Options{}).Client()
	store, err := NewStore(cfg, rdb, clk)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var made []queue.Job
	intake, err := dialer.NewIntake(dialer.IntakeOptions{Policy: dialer.PolicyFrom(cfg), Store: store, Clock: clk, OnResult: func(r dialer.IntakeResult) {
		mu.Lock()
		defer mu.Unlock()
		if r.Err != nil {
			t.Errorf("request refused: %v", r.Err)
		}
		made = append(made, r.Job)
	}})
	if err != nil {
		t.Fatal(err)
	}
	dopts, err := DetectorOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dopts.Sink, dopts.Clock = intake, clk
	det := detect.New(dopts)
	var ups int
	conns, err := connectionsFor(cfg, clk, nil, nil, func(_ string, up bool) {
		mu.Lock()
		defer mu.Unlock()
		if up {
			ups++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = conns.Run(ctx, det, nil) }()
	go func() { defer wg.Done(); _ = intake.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	connected := func(n int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return ups >= n }
	}
	daemontest.WaitUntil(t, "the first connection", connected(1))

	// The customer's call to 1003 goes unanswered and on to voicemail; the sockets drop during
	// the greeting, and the message and the hang-up happen while nobody listens.
	gapCall := pbx.Inbound(aritest.InboundCall{From: "+31201234501", To: "+31205550103", Steps: []aritest.Step{
		aritest.Dial("PJSIP/1003", 10*time.Second, ""),
		aritest.VoiceMail("1003@default", 3*time.Second),
	}})
	daemontest.WaitUntil(t, "the caller to reach voicemail", func() bool {
		for _, ch := range pbx.Channels() {
			if ch.ID == gapCall.Channel.ID && ch.Dialplan.AppName == "VoiceMail" {
				return true
			}
		}
		return false
	})
	daemontest.WaitUntil(t, "the detector to see the voicemail start", func() bool { return det.Stats().Events > 0 && det.Tracked() == 1 })
	pbx.DropWebSockets()
	if err := gapCall.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if det.Tracked() != 1 {
		t.Fatalf("detector tracks %d calls before the reconnect; want the one whose end it missed", det.Tracked())
	}
	daemontest.WaitUntil(t, "the reconnect", connected(2))
	daemontest.WaitUntil(t, "the missed call to be closed out", func() bool { mu.Lock(); defer mu.Unlock(); return len(made) == 1 })

	// After the reconnect events flow again: a new voicemail is a voicemail promise.
	after := pbx.Inbound(aritest.InboundCall{From: "+31201234502", To: "+31205550103", Steps: []aritest.Step{
		aritest.Dial("PJSIP/1003", 10*time.Second, ""),
		aritest.VoiceMail("1003@default", 3*time.Second),
	}})
	if err := after.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	daemontest.WaitUntil(t, "the promise for the call after the reconnect", func() bool { mu.Lock(); defer mu.Unlock(); return len(made) == 2 })

	mu.Lock()
	defer mu.Unlock()
	// During the gap the message itself was not seen (Asterisk drops events for an app with no
	// socket), so what is known is an unanswered call to 1003: still a promise, not lost.
	want := []struct{ number, reason, target string }{
		{"+31201234501", "unanswered_transfer", "1003"},
		{"+31201234502", "voicemail", "1003"},
	}
	for i, w := range want {
		j, err := store.Get(ctx, made[i].Ref())
		if err != nil {
			t.Fatalf("promise %d not in Redis: %v", i, err)
		}
		if j.Number != w.number || string(j.Reason()) != w.reason || j.Target != w.target || j.State != queue.StatePending {
			t.Errorf("promise %d: %s %s → %s (%s); want %s %s → %s, pending", i, j.Number, j.Reason(), j.Target, j.State, w.number, w.reason, w.target)
		}
	}
}
