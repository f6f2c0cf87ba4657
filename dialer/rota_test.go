package dialer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

const rotaConfig = `
asterisk:
  - {name: pbx1, url: "http://127.0.0.1:8088/ari", username: callbackd, password: secret}
queues:
  - name: support
agents:
  - id: anna
    endpoint: PJSIP/1003
    queues: [support]
    shifts:
      week:
        - days: [mon, tue, wed, thu, fri]
          hours: ["08:30-12:30"]
        - days: [thu]
          hours: ["13:30-17:30"]
      except:
        - date: "2026-11-24"
        - date: "2026-11-25"
          hours: ["12:00-14:00"]
  - id: bob
    endpoint: PJSIP/1002
    queues: [support]
dialer:
  customer_dial_template: PJSIP/{number}@provider
  caller_id: {number: "+31205550100"}
`

func rotaPolicy(t *testing.T) Policy {
	t.Helper()
	cfg, err := config.Parse([]byte(rotaConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return PolicyFrom(cfg)
}

func registered(p *Pool, endpoint string) {
	p.HandleEvent(&ari.Event{Type: ari.EventDeviceStateChanged, AsteriskID: "ast1",
		DeviceState: &ari.DeviceState{Name: endpoint, State: deviceNotInUse}})
}

func TestOnlyAgentsOnShiftAreFree(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Amsterdam")
	at := func(d, h, m int) time.Time { return time.Date(2026, 11, d, h, m, 0, 0, loc) }
	tests := []struct {
		name       string
		now        time.Time
		state      string
		nextChange time.Time
	}{
		{"before the shift", at(23, 8, 29), AgentOffShift, at(23, 8, 30)},
		{"the first minute of the shift", at(23, 8, 30), AgentFree, at(23, 12, 30)},
		{"the shift's end is off shift (tuesday is a day off)", at(23, 12, 30), AgentOffShift, at(25, 12, 0)},
		{"a day off (exception without hours)", at(24, 10, 0), AgentOffShift, at(25, 12, 0)},
		{"a swapped shift (exception with other hours)", at(25, 13, 0), AgentFree, at(25, 14, 0)},
		{"the usual morning is off on the swapped day", at(25, 9, 0), AgentOffShift, at(25, 12, 0)},
		{"two shifts a day: the afternoon one", at(26, 14, 0), AgentFree, at(26, 17, 30)},
		{"the weekend", at(28, 10, 0), AgentOffShift, at(30, 8, 30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPool(rotaPolicy(t).Agents, clock.NewFake(tt.now), nil)
			registered(p, "PJSIP/1003")
			registered(p, "PJSIP/1002")
			var anna AgentView
			for _, v := range p.Agents() {
				if v.ID == "anna" {
					anna = v
				}
			}
			if anna.State != tt.state {
				t.Errorf("anna is %s, want %s", anna.State, tt.state)
			}
			free := p.Free()
			if got := len(free); tt.state == AgentFree && got != 2 || tt.state != AgentFree && (got != 1 || free[0].ID != "bob") {
				t.Errorf("free agents %+v", free)
			}
			if next, ok := p.NextChange(); !ok || !next.Equal(tt.nextChange) {
				t.Errorf("next change %s, want %s (the shift's edge wakes the dispatcher)", next.In(loc), tt.nextChange)
			}
		})
	}
}

func TestPresenceIsSharedBetweenPools(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	clk := clock.NewFake(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	policy := rotaPolicy(t)
	one, two := NewPool(policy.Agents, clk, nil), NewPool(policy.Agents, clk, nil)
	for _, p := range []*Pool{one, two} {
		p.UsePresence(queue.NewPresences(srv.Client(), "cb", clk))
		registered(p, "PJSIP/1002")
	}
	if err := one.SetPresence(ctx, "bob", queue.PresenceLoggedOut, "api"); err != nil {
		t.Fatal(err)
	}
	if err := one.SetPresence(ctx, "nobody", queue.PresenceLoggedOut, "api"); err == nil {
		t.Error("an unknown agent was logged out")
	}
	// A daemon that starts later reads it from Redis.
	done := make(chan error, 1)
	go func() { done <- two.FollowPresence(ctx) }()
	state := func(p *Pool) string {
		for _, v := range p.Agents() {
			if v.ID == "bob" {
				return v.State
			}
		}
		return ""
	}
	if got := state(one); got != AgentLoggedOut {
		t.Errorf("the setting pool says bob is %s", got)
	}
	for state(two) != AgentLoggedOut {
		select {
		case err := <-done:
			t.Fatalf("FollowPresence ended: %v", err)
		case <-two.Changed():
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n := two.OnDuty("support"); n != 0 {
		t.Errorf("%d agents on duty with bob logged out and anna off shift", n)
	}
}

// A presence set through this daemon while its first read of the store is on its way is not
// overwritten by what that read found (the daemon test's flake: Anna paused through the API
// right after the start, then read back as logged in and rung).
func TestAPresenceSetDuringTheFirstReadIsNotOverwritten(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := t.Context()
	clk := clock.NewFake(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	rdb := srv.Client()
	reads := &heldReads{entered: make(chan int, 10), release: []chan struct{}{make(chan struct{}), make(chan struct{})}}
	t.Cleanup(func() { close(reads.release[1]) })
	rdb.AddHook(reads)
	p := NewPool(rotaPolicy(t).Agents, clk, nil)
	p.UsePresence(queue.NewPresences(rdb, "cb", clk))
	registered(p, "PJSIP/1002")
	go func() { _ = p.FollowPresence(ctx) }()
	if n := <-reads.entered; n != 0 {
		t.Fatalf("read %d first", n)
	}
	if err := p.SetPresence(ctx, "bob", queue.PresencePaused, "api"); err != nil {
		t.Fatal(err)
	}
	close(reads.release[0])
	// The next read (the change's, or the periodic one) begins only after the first one was
	// applied: the state between the two is what the first read left.
	for waiting := true; waiting; {
		select {
		case <-reads.entered:
			waiting = false
		case <-time.After(10 * time.Millisecond):
			clk.Advance(presenceReload)
		}
	}
	for _, v := range p.Agents() {
		if v.ID == "bob" && v.State != AgentPaused {
			t.Errorf("bob is %s after the first read; want paused, as set while it was on its way", v.State)
		}
	}
}

// heldReads holds the answers of the first two presence reads (pipelines of HMGETs) until
// their release is closed, telling entered which one was read; everything else passes.
type heldReads struct {
	mu      sync.Mutex
	n       int
	entered chan int
	release []chan struct{}
}

func (h *heldReads) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *heldReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *heldReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || cmds[0].Name() != "hmget" {
			return next(ctx, cmds)
		}
		h.mu.Lock()
		n := h.n
		h.n++
		h.mu.Unlock()
		err := next(ctx, cmds)
		if n < len(h.release) {
			// Read, its answer not yet handed back.
			h.entered <- n
			<-h.release[n]
		}
		return err
	}
}
