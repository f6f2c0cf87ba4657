package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
)

func TestScriptsRunOnRedisCluster(t *testing.T) {
	// One node owning every slot is enough to prove the key layout: in cluster mode Redis
	// refuses a command whose keys span slots, and with strictSlots a script that touches any
	// key outside its declared keys' slot, so every operation here succeeds only if all the
	// keys it touches share the queue's hash tag.
	node := redistest.Start(t, redistest.Options{Cluster: true})
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{node.Addr()}})
	t.Cleanup(func() { _ = rdb.Close() })
	clk := clock.NewFake(t0)
	s, err := New(rdb, Options{Clock: clk, Queues: []string{testQueue, otherQ}, strictSlots: true})
	wantErr(t, err, nil)
	ctx := context.Background()

	for i, q := range []string{testQueue, otherQ} {
		steps := []struct {
			name string
			run  func() error
		}{}
		var job *Job
		add := func(name string, run func() error) {
			steps = append(steps, struct {
				name string
				run  func() error
			}{name, run})
		}
		r := request(fmt.Sprintf("+3120123450%d", i))
		r.Queue = q
		add("enqueue", func() error { _, _, err := s.Enqueue(ctx, r); return err })
		add("merge", func() error {
			_, res, err := s.Enqueue(ctx, r)
			if err == nil && !res.Merged {
				err = fmt.Errorf("second request not merged")
			}
			return err
		})
		add("claim", func() error {
			j, err := s.Claim(ctx, q, ClaimOptions{Worker: "w", Lease: time.Minute, Prefer: "201"})
			job = j
			return err
		})
		add("extend", func() error { _, err := s.Extend(ctx, job.Ref(), job.Lease.Token, time.Minute); return err })
		add("retry", func() error { _, err := s.Retry(ctx, job.Ref(), job.Lease.Token, t0, "busy"); return err })
		add("claim again", func() error {
			j, err := s.Claim(ctx, q, ClaimOptions{Worker: "w", Lease: time.Minute})
			job = j
			return err
		})
		add("connect", func() error { _, err := s.MarkConnected(ctx, job.Ref(), job.Lease.Token, t0); return err })
		add("complete", func() error { _, err := s.Complete(ctx, job.Ref(), job.Lease.Token, StateKept, ""); return err })
		add("enqueue another", func() error { _, _, err := s.Enqueue(ctx, r); return err })
		add("resolve", func() error { _, err := s.Resolve(ctx, q, r.Number, ""); return err })
		add("enqueue a third", func() error { _, _, err := s.Enqueue(ctx, r); return err })
		add("claim the third", func() error {
			j, err := s.Claim(ctx, q, ClaimOptions{Worker: "w", Lease: time.Minute})
			job = j
			return err
		})
		add("reclaim", func() error {
			clk.Advance(2 * time.Minute)
			n, err := s.Reclaim(ctx, q)
			if err == nil && n.Reclaimed != 1 {
				err = fmt.Errorf("reclaimed %d, want 1", n.Reclaimed)
			}
			return err
		})
		add("cancel", func() error { _, err := s.Cancel(ctx, job.Ref(), ""); return err })
		add("list", func() error {
			jobs, err := s.List(ctx, q, ListOptions{})
			if err == nil && len(jobs) != 3 {
				err = fmt.Errorf("listed %d jobs, want 3", len(jobs))
			}
			return err
		})
		add("stats", func() error { _, err := s.Stats(ctx, q); return err })
		add("next due", func() error { _, _, err := s.NextDue(ctx, q); return err })
		add("get", func() error { _, err := s.Get(ctx, job.Ref()); return err })
		for _, st := range steps {
			if err := st.run(); err != nil {
				t.Fatalf("queue %s: %s on Redis Cluster: %v", q, st.name, err)
			}
		}
	}
}
