package queue

import (
	"context"
	"sort"

	"github.com/redis/go-redis/v9"
)

// Wakeups tells when any process sharing this Redis put a promise of one of the store's queues
// into pending — made, retried, released or reclaimed — so a dispatcher can look at once
// instead of waiting for its next rescan. Wake-ups are coalesced: the channel holds at most
// one. It closes when ctx ends; the subscription reconnects by itself after a Redis outage
// (wake-ups published meanwhile are lost, which the rescan covers).
func (s *Store) Wakeups(ctx context.Context) <-chan struct{} {
	channels := make([]string, 0, len(s.queues))
	for q := range s.queues {
		channels = append(channels, s.ks(q).base+"wake")
	}
	sort.Strings(channels)
	out := make(chan struct{}, 1)
	relay(ctx, s.rdb.Subscribe(ctx, channels...), func(*redis.Message) {
		select {
		case out <- struct{}{}:
		default:
		}
	}, func() { close(out) })
	return out
}

// relay hands each message of ps to deliver until ctx ends or the subscription closes, then
// closes ps and calls done. deliver may block; it runs on relay's own goroutine.
func relay(ctx context.Context, ps *redis.PubSub, deliver func(*redis.Message), done func()) {
	go func() {
		defer done()
		defer ps.Close()
		msgs := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				deliver(m)
			}
		}
	}()
}
