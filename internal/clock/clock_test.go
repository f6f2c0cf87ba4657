package clock

import (
	"testing"
	"time"
)

func TestFakeFiresWaitersOnlyWhenDue(t *testing.T) {
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	c := NewFake(start)
	early := c.After(time.Second)
	late := c.After(time.Minute)

	c.Advance(30 * time.Second)
	select {
	case got := <-early:
		if !got.Equal(start.Add(30 * time.Second)) {
			t.Fatalf("early waiter fired with %v", got)
		}
	default:
		t.Fatal("waiter due after 1s did not fire after 30s")
	}
	select {
	case <-late:
		t.Fatal("waiter due after 1m fired after 30s")
	default:
	}
	if n := c.Waiters(); n != 1 {
		t.Fatalf("Waiters() = %d, want 1", n)
	}
	c.Set(start) // never backwards
	if !c.Now().Equal(start.Add(30 * time.Second)) {
		t.Fatalf("clock moved backwards to %v", c.Now())
	}
}

func TestFakeAfterZeroFiresAtOnce(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	select {
	case <-c.After(0):
	default:
		t.Fatal("After(0) did not fire at once")
	}
}
