package redistest

import (
	"context"
	"strings"
	"testing"
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
