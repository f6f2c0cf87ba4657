package daemon

import (
	"context"
	"strings"
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
// reconnect, and calls after the reconnect are processed as usual. Callers who were in
// voicemail when the socket dropped make their voicemail promise, marked as such.
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

	// One customer's call to 1003 goes unanswered and on to voicemail, another's goes straight
	// there; the sockets drop during the greetings, and the messages and the hang-ups happen
	// while nobody listens.
	inVoicemail := func(c *aritest.Call) func() bool {
		return func() bool {
			for _, ch := range pbx.Channels() {
				if ch.ID == c.Channel.ID && ch.Dialplan.AppName == "VoiceMail" {
					return true
				}
			}
			return false
		}
	}
	gapCall := pbx.Inbound(aritest.InboundCall{From: "+31201234501", To: "+31205550103", Steps: []aritest.Step{
		aritest.Dial("PJSIP/1003", 10*time.Second, ""),
		aritest.VoiceMail("1003@default", 20*time.Second),
	}})
	daemontest.WaitUntil(t, "the first caller to reach voicemail", inVoicemail(gapCall))
	directCall := pbx.Inbound(aritest.InboundCall{From: "+31201234503", To: "+31205550103", Steps: []aritest.Step{
		aritest.VoiceMail("1003@default", 20*time.Second),
	}})
	daemontest.WaitUntil(t, "the second caller to reach voicemail", inVoicemail(directCall))
	// Everything the fake has sent so far (both VoiceMail() starts among it) handled.
	sent := uint64(pbx.Delivered(cfg.Asterisk[0].MonitorApp))
	if sent == 0 {
		t.Fatalf("the fake delivered nothing to the monitor app %q", cfg.Asterisk[0].MonitorApp)
	}
	daemontest.WaitUntil(t, "the detector to see the voicemails start", func() bool { return det.Stats().Events >= sent })
	pbx.DropWebSockets()
	for _, c := range []*aritest.Call{gapCall, directCall} {
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if det.Tracked() != 2 {
		t.Fatalf("detector tracks %d calls before the reconnect; want the two whose end it missed", det.Tracked())
	}
	daemontest.WaitUntil(t, "the reconnect", connected(2))
	daemontest.WaitUntil(t, "the missed calls to be closed out", func() bool { mu.Lock(); defer mu.Unlock(); return len(made) == 2 })
	if n := det.Stats().VoicemailGaps; n != 2 {
		t.Errorf("detector counts %d voicemails interrupted by the gap; want 2", n)
	}

	// After the reconnect events flow again: a new voicemail is a voicemail promise.
	after := pbx.Inbound(aritest.InboundCall{From: "+31201234502", To: "+31205550103", Steps: []aritest.Step{
		aritest.Dial("PJSIP/1003", 10*time.Second, ""),
		aritest.VoiceMail("1003@default", 3*time.Second),
	}})
	if err := after.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	daemontest.WaitUntil(t, "the promise for the call after the reconnect", func() bool { mu.Lock(); defer mu.Unlock(); return len(made) == 3 })

	mu.Lock()
	defer mu.Unlock()
	// During the gap the messages were not seen (Asterisk drops events for an app with no
	// socket), so whether they were left is not known: the callers were in voicemail, and a
	// caller who left a message must not be lost. Those promises say how they were made.
	want := map[string]struct {
		reason, target string
		gap            bool
	}{
		"+31201234501": {"voicemail", "1003", true},
		"+31201234503": {"voicemail", "1003", true},
		"+31201234502": {"voicemail", "1003", false},
	}
	for i, m := range made {
		j, err := store.Get(ctx, m.Ref())
		if err != nil {
			t.Fatalf("promise %d not in Redis: %v", i, err)
		}
		w, ok := want[j.Number]
		delete(want, j.Number)
		if !ok || string(j.Reason()) != w.reason || j.Target != w.target || j.State != queue.StatePending ||
			strings.Contains(j.Note, "interrupted") != w.gap {
			t.Errorf("promise %d: %s %s → %s (%s, note %q); want %s → %s, pending, noted as interrupted: %v",
				i, j.Number, j.Reason(), j.Target, j.State, j.Note, w.reason, w.target, w.gap)
		}
	}
	if len(want) > 0 {
		t.Errorf("no promise for %v", want)
	}
}
