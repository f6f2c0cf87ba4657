package ari

import (
	"errors"
	"testing"
)

// The bound holds for the whole backlog, the snapshot a new socket's gate lets through first
// included: frames held while the snapshot is taken leave it its place.
func TestAGateOpensWithinTheBacklogBound(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bound   int64
		already int // events still pending from before
	}{
		{"an empty queue", 3, 0},
		{"a queue still holding one", 3, 1},
		{"a bound of one", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue()
			for range tc.already {
				q.push(item{frame: []byte("old")})
			}
			g := &gate{q: q, bound: backlogBound{events: tc.bound, bytes: 1 << 20}}
			held := 0
			for {
				err := g.push([]byte("frame"))
				if errors.Is(err, ErrBacklogFull) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				held++
			}
			g.openWith(Snapshot{})
			if got := q.pending.Load(); got > tc.bound {
				t.Errorf("after holding %d frames and opening, the backlog is %d; want at most the bound %d", held, got, tc.bound)
			}
		})
	}
}
