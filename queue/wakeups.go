package queue

import (
	"context"
	"sort"
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
	ps := s.rdb.Subscribe(ctx, channels...)
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer ps.Close()
		msgs := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}
