package queue

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
)

// A hold is only lengthened, read back by any daemon, expires with its end on Redis' clock,
// and one that does not read back is named while the others are still returned.
func TestAgentHoldsAreLengthenedNeverShortened(t *testing.T) {
	rdb := redistest.Start(t, redistest.Options{}).Client()
	clk := clock.NewFake(t0)
	ctx := context.Background()
	h := NewAgentHolds(rdb, "", clk)
	other := NewAgentHolds(rdb, "", clk)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	steps := []struct {
		name string
		set  AgentHold
		want AgentHold
	}{
		{"wrap-up", AgentHold{WrapUpUntil: at(30 * time.Second)}, AgentHold{WrapUpUntil: at(30 * time.Second)}},
		{"a shorter wrap-up keeps the longer", AgentHold{WrapUpUntil: at(10 * time.Second)}, AgentHold{WrapUpUntil: at(30 * time.Second)}},
		{"a cooldown beside it", AgentHold{CooldownUntil: at(2 * time.Minute)},
			AgentHold{WrapUpUntil: at(30 * time.Second), CooldownUntil: at(2 * time.Minute)}},
	}
	for _, s := range steps {
		if err := h.Hold(ctx, "bob", s.set); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, err := other.Get(ctx, []string{"bob", "anna"})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if len(got) != 1 || got["bob"] != s.want {
			t.Errorf("%s: holds %+v; want bob's %+v and none for anna", s.name, got, s.want)
		}
	}
	if ttl := rdb.PTTL(ctx, "callbackd:agent:bob:hold").Val(); ttl <= time.Minute || ttl > 2*time.Minute {
		t.Errorf("bob's hold expires in %v; want with its end, two minutes from now", ttl)
	}
	if err := h.Hold(ctx, "past", AgentHold{CooldownUntil: t0.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, "callbackd:agent:past:hold").Val(); n != 0 {
		t.Error("a hold already over was stored")
	}
	if err := h.Hold(ctx, "not an id", AgentHold{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an agent id with spaces: %v; want ErrInvalid", err)
	}

	rdb.HSet(ctx, "callbackd:agent:broken:hold", "cool_until", "soon")
	got, err := other.Get(ctx, []string{"bob", "broken"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `hold of agent broken: "soon" is not a time in ms`) {
		t.Errorf("a broken hold: %v; want an error naming it", err)
	}
	if _, ok := got["bob"]; !ok || len(got) != 1 {
		t.Errorf("beside a broken hold: %+v; want bob's", got)
	}
}
