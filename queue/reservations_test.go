package queue

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/redistest"
)

func newReservations(t *testing.T) (*Reservations, *redis.Client) {
	t.Helper()
	rdb := redistest.Start(t, redistest.Options{}).Client()
	return NewReservations(rdb, "test"), rdb
}

// TestReservationsBelongToOneHolderAtATime plays two daemons, d1 and d2, sharing one Redis.
func TestReservationsBelongToOneHolderAtATime(t *testing.T) {
	r, _ := newReservations(t)
	ctx := context.Background()
	steps := []struct {
		name       string
		do         func() (bool, error)
		want       bool
		wantHolder string // of agent 1003 after the step; "" for nobody
	}{
		{"d1 reserves a free agent",
			func() (bool, error) { return r.Reserve(ctx, "1003", "d1", time.Minute) }, true, "d1"},
		{"d2 cannot reserve it too",
			func() (bool, error) { return r.Reserve(ctx, "1003", "d2", time.Minute) }, false, "d1"},
		{"d1 reserving it again is refused: renew instead",
			func() (bool, error) { return r.Reserve(ctx, "1003", "d1", time.Minute) }, false, "d1"},
		{"d2 cannot renew d1's reservation",
			func() (bool, error) { return r.Renew(ctx, "1003", "d2", time.Hour) }, false, "d1"},
		{"d2 cannot release d1's reservation",
			func() (bool, error) { return r.Release(ctx, "1003", "d2") }, false, "d1"},
		{"d1 renews its own",
			func() (bool, error) { return r.Renew(ctx, "1003", "d1", time.Minute) }, true, "d1"},
		{"another agent is independent",
			func() (bool, error) { return r.Reserve(ctx, "1004", "d2", time.Minute) }, true, "d1"},
		{"d1 releases its own",
			func() (bool, error) { return r.Release(ctx, "1003", "d1") }, true, ""},
		{"releasing twice finds nothing",
			func() (bool, error) { return r.Release(ctx, "1003", "d1") }, false, ""},
		{"renewing a released reservation finds nothing",
			func() (bool, error) { return r.Renew(ctx, "1003", "d1", time.Minute) }, false, ""},
		{"after the release d2 reserves it",
			func() (bool, error) { return r.Reserve(ctx, "1003", "d2", time.Minute) }, true, "d2"},
	}
	for _, st := range steps {
		got, err := st.do()
		wantErr(t, err, nil)
		if got != st.want {
			t.Fatalf("%s: got %v, want %v", st.name, got, st.want)
		}
		holder, ok, err := r.Holder(ctx, "1003")
		wantErr(t, err, nil)
		if holder != st.wantHolder || ok != (st.wantHolder != "") {
			t.Fatalf("%s: agent 1003 held by %q (%v), want %q", st.name, holder, ok, st.wantHolder)
		}
	}
}

func TestARenewedReservationRunsForTheNewLease(t *testing.T) {
	r, rdb := newReservations(t)
	ctx := context.Background()
	ok, err := r.Reserve(ctx, "1003", "d1", time.Second)
	if err != nil || !ok {
		t.Fatalf("Reserve = %v, %v", ok, err)
	}
	if ok, err := r.Renew(ctx, "1003", "d1", time.Hour); err != nil || !ok {
		t.Fatalf("Renew = %v, %v", ok, err)
	}
	ttl, err := rdb.PTTL(ctx, "test:agent:1003:reservation").Result()
	wantErr(t, err, nil)
	if ttl <= time.Second || ttl > time.Hour {
		t.Errorf("reservation TTL %v after renewing for an hour", ttl)
	}
}

func TestExactlyOneOfManyRacingDaemonsGetsTheAgent(t *testing.T) {
	r, _ := newReservations(t)
	ctx := context.Background()
	const racers = 32
	var wg sync.WaitGroup
	won := make(chan string, racers)
	start := make(chan struct{})
	for i := 0; i < racers; i++ {
		wg.Add(1)
		go func(holder string) {
			defer wg.Done()
			<-start
			ok, err := r.Reserve(ctx, "1003", holder, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				won <- holder
			}
		}(fmt.Sprintf("d%d", i))
	}
	close(start)
	wg.Wait()
	close(won)
	var winners []string
	for h := range won {
		winners = append(winners, h)
	}
	if len(winners) != 1 {
		t.Fatalf("%d daemons reserved the agent (%v), want exactly one", len(winners), winners)
	}
	if holder, _, err := r.Holder(ctx, "1003"); err != nil || holder != winners[0] {
		t.Errorf("Holder = %q (%v), want the winner %q", holder, err, winners[0])
	}
}

// A daemon that dies keeps its agents only until the lease runs out, on Redis' clock.
func TestAReservationExpiresWithItsLease(t *testing.T) {
	r, _ := newReservations(t)
	ctx := context.Background()
	if ok, err := r.Reserve(ctx, "1003", "d1", 50*time.Millisecond); err != nil || !ok {
		t.Fatalf("Reserve = %v, %v", ok, err)
	}
	// Poll rather than sleep a fixed time: when it expires is Redis' business, only that it does.
	for i := 0; ; i++ {
		_, held, err := r.Holder(ctx, "1003")
		wantErr(t, err, nil)
		if !held {
			break
		}
		if i == 1000 {
			t.Fatalf("reservation with a 50ms lease still held after polling for ten seconds")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ok, err := r.Renew(ctx, "1003", "d1", time.Minute); err != nil || ok {
		t.Errorf("Renew after expiry = %v, %v; want false: the agent is lost", ok, err)
	}
	if ok, err := r.Reserve(ctx, "1003", "d2", time.Minute); err != nil || !ok {
		t.Errorf("Reserve by another daemon after expiry = %v, %v; want true", ok, err)
	}
}

func TestReservationsRefuseBadInputAndWriteNothing(t *testing.T) {
	r, rdb := newReservations(t)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"empty agent", func() error { _, err := r.Reserve(ctx, "", "d1", time.Minute); return err }},
		{"space in agent", func() error { _, err := r.Reserve(ctx, "10 03", "d1", time.Minute); return err }},
		{"newline in agent", func() error { _, err := r.Reserve(ctx, "1003\n", "d1", time.Minute); return err }},
		{"empty holder", func() error { _, err := r.Reserve(ctx, "1003", "", time.Minute); return err }},
		{"tab in holder", func() error { _, err := r.Renew(ctx, "1003", "d\t1", time.Minute); return err }},
		{"no-break space in holder", func() error { _, err := r.Release(ctx, "1003", "d\u00a01"); return err }},
		{"overlong agent", func() error { _, _, err := r.Holder(ctx, strings.Repeat("1", 300)); return err }},
		{"zero lease", func() error { _, err := r.Reserve(ctx, "1003", "d1", 0); return err }},
		{"lease over a day", func() error { _, err := r.Renew(ctx, "1003", "d1", 25*time.Hour); return err }},
		{"bad prefix", func() error {
			_, err := NewReservations(rdb, "cb{x}").Reserve(ctx, "1003", "d1", time.Minute)
			return err
		}},
		{"no client", func() error { _, _, err := NewReservations(nil, "").Holder(ctx, "1003"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.call(), ErrInvalid)
			if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
				t.Errorf("DBSIZE %d (%v) after a refused call, want 0", n, err)
			}
		})
	}
}
