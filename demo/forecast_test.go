package demo

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// The demo judges the forecast made when each promise was made. A free agent may claim the
// promise before the demo reads the forecast, which lists only promises still waiting; such a
// promise is being called back already and must count as predicted connected now, not be
// left out of the score (CI once printed "3 of 4" for the demo's five promises).
func TestAPromiseClaimedBeforeTheForecastIsReadIsPredictedConnectedNow(t *testing.T) {
	cfg, err := config.Parse([]byte(ConfigYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
	store, err := queue.New(redistest.Start(t, redistest.Options{}).Client(),
		queue.Options{Clock: clk, Queues: dialer.PolicyFrom(cfg).QueueNames()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	policy := dialer.PolicyFrom(cfg)
	pool := dialer.NewPool(policy.Agents, clk, nil)
	for _, a := range policy.Agents {
		pool.HandleEvent(&ari.Event{Type: ari.EventDeviceStateChanged, AsteriskID: "pbx",
			DeviceState: &ari.DeviceState{Name: a.Endpoint, State: "NOT_INUSE"}})
	}
	fc := dialer.NewForecaster(policy, store, pool, nil)
	tl := &timeline{w: io.Discard, clk: clk, start: clk.Now()}
	for _, tc := range []struct {
		name  string
		claim bool
	}{
		{"still waiting for an agent", false},
		{"claimed by a free agent already", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			queueName := cfg.Queues[0].Name
			j, _, err := store.Enqueue(ctx, queue.Request{Queue: queueName, Number: "+31201234501", Reason: queue.ReasonVoicemail,
				Deadline: clk.Now().Add(time.Hour), MaxAttempts: 3})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = store.Cancel(ctx, j.Ref(), "test over") })
			if tc.claim {
				if c, err := store.Claim(ctx, queueName, queue.ClaimOptions{Worker: "demo", Lease: time.Minute}); err != nil || c == nil || c.ID != j.ID {
					t.Fatalf("claim: %+v, %v", c, err)
				}
			}
			p, ok := predict(ctx, fc, store, tl, dialer.IntakeResult{Job: j})
			if !ok || p.ID != j.ID || p.AtRisk() {
				t.Fatalf("prediction %+v (%v); want promise %s predicted kept", p, ok, j.ID)
			}
			if tc.claim && !p.Connect.Equal(clk.Now()) {
				t.Errorf("a promise being called back is predicted connected at %v; want now (%v)", p.Connect, clk.Now())
			}
		})
	}
}
