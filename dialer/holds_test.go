package dialer

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// An agent's wrap-up and cooldown, set by the daemon whose callback ended, hold the agent
// back in every daemon sharing the Redis — one following the changes, one that checks just
// before it rings (heldElsewhere), one started after the hold was set — until the hold ends.
func TestWrapUpAndCooldownAreSharedByPoolsAndSurviveARestart(t *testing.T) {
	agents := []Agent{{ID: "bob", Endpoint: "PJSIP/1002", Extension: "1002"}}
	for _, tc := range []struct {
		name         string
		wrapUp, cool time.Duration
		want         string
		lasts        time.Duration
	}{
		{"wrap-up after a conversation", 30 * time.Second, 0, AgentWrapUp, 30 * time.Second},
		{"cooldown after a ring nobody answered", 0, 2 * time.Minute, AgentCooldown, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			ctx := t.Context()
			clk := clock.NewFake(monday10)
			pool := func() *Pool {
				p := NewPool(agents, clk, nil)
				p.UseHolds(queue.NewAgentHolds(srv.Client(), "cb", clk))
				p.HandleEvent(&ari.Event{Type: ari.EventDeviceStateChanged, AsteriskID: "ast1",
					DeviceState: &ari.DeviceState{Name: "PJSIP/1002", State: deviceNotInUse}})
				return p
			}
			state := func(p *Pool) string { return p.Agents()[0].State }
			calling, following, checking := pool(), pool(), pool()
			followed := make(chan error, 1)
			go func() { followed <- following.FollowHolds(ctx) }()
			waitSubscribed(t, srv.Client(), "cb:holds")

			calling.startCall("bob")
			calling.shareHold("bob", calling.holdFor(tc.wrapUp, tc.cool))
			calling.endCall("bob", tc.wrapUp, tc.cool)
			if got := state(calling); got != tc.want {
				t.Fatalf("the daemon that made the call says bob is %s; want %s", got, tc.want)
			}
			for state(following) != tc.want {
				select {
				case err := <-followed:
					t.Fatalf("FollowHolds ended: %v", err)
				case <-time.After(10 * time.Millisecond):
				}
			}
			if !checking.heldElsewhere(ctx, "bob") || state(checking) != tc.want {
				t.Errorf("a daemon about to ring bob does not see the hold (bob is %s)", state(checking))
			}
			restarted := pool()
			if err := restarted.LoadHolds(ctx); err != nil {
				t.Fatal(err)
			}
			if got := state(restarted); got != tc.want {
				t.Errorf("after a restart bob is %s; want %s", got, tc.want)
			}
			if v := restarted.Agents()[0]; !v.Until.Equal(monday10.Add(tc.lasts)) {
				t.Errorf("after a restart the hold ends %v; want %v", v.Until, monday10.Add(tc.lasts))
			}
			clk.Advance(tc.lasts)
			for _, p := range []*Pool{calling, following, checking, restarted} {
				if got := state(p); got != AgentFree {
					t.Errorf("once the hold is over bob is %s; want free", got)
				}
			}
			if checking.heldElsewhere(ctx, "bob") {
				t.Error("a hold that is over still holds bob back")
			}
		})
	}
}

// waitSubscribed waits until a daemon listens on channel, so what is published next reaches it.
func waitSubscribed(t *testing.T, rdb *redis.Client, channel string) {
	t.Helper()
	guard := time.After(20 * time.Second)
	for rdb.PubSubNumSub(t.Context(), channel).Val()[channel] == 0 {
		select {
		case <-guard:
			t.Fatalf("nobody subscribed to %s", channel)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
