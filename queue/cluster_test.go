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
	// The store as a daemon loads it, its function library sent to every primary; the
	// short-lived store of the expire step below runs scripts.
	loadStore(t, s, rdb)

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
		add("stats", func() error {
			st, err := s.Stats(ctx, q)
			if err == nil && st.Finished[StateKept] != 1 {
				err = fmt.Errorf("stats count %d kept, want 1", st.Finished[StateKept])
			}
			return err
		})
		add("outcomes", func() error {
			n, err := s.Outcomes(ctx, q, 24*time.Hour)
			if err == nil && (n[StateKept] != 1 || n[StateCancelled] != 1 || n[StateResolved] != 1) {
				err = fmt.Errorf("outcomes %v, want one kept, one cancelled, one resolved", n)
			}
			return err
		})
		add("hold", func() error {
			h := r
			h.Number = fmt.Sprintf("+3120123460%d", i)
			if _, _, err := s.Enqueue(ctx, h); err != nil {
				return err
			}
			_, err := s.Claim(ctx, q, ClaimOptions{Worker: "w", Lease: time.Minute, Held: []string{r.Target}})
			if _, held := HoldEnds(err); !held {
				err = fmt.Errorf("claim of a held job = %v, want ErrEmpty with a hold end", err)
			} else {
				err = nil
			}
			return err
		})
		add("head", func() error {
			_, ok, err := s.Head(ctx, q)
			if err == nil && !ok {
				err = fmt.Errorf("no head with a job due")
			}
			return err
		})
		add("connected reclaim", func() error {
			j, err := s.Claim(ctx, q, ClaimOptions{Worker: "w", Lease: time.Minute})
			if err != nil {
				return err
			}
			if _, err := s.MarkConnected(ctx, j.Ref(), j.Lease.Token, clk.Now()); err != nil {
				return err
			}
			clk.Advance(2 * time.Minute)
			n, err := s.Reclaim(ctx, q)
			if err == nil && n.Finished != 1 {
				err = fmt.Errorf("reclaim finished %d connected jobs, want 1", n.Finished)
			}
			return err
		})
		add("next due", func() error { _, _, err := s.NextDue(ctx, q); return err })
		add("get", func() error { _, err := s.Get(ctx, job.Ref()); return err })
		add("export", func() error {
			c, err := s.ExportCustomer(ctx, r.Number)
			if err == nil && len(c.Queues) != 2 {
				err = fmt.Errorf("exported %d queues, want 2", len(c.Queues))
			}
			return err
		})
		add("erase", func() error {
			if err := NewRateLimits(rdb, "").Take(ctx, clk.Now(), Limit{Name: "dials_per_number_per_day",
				Subject: r.Number, Max: 10, Window: time.Hour}); err != nil {
				return err
			}
			e, err := s.EraseCustomer(ctx, r.Number)
			if err == nil && (len(e.Queues[i].Jobs) == 0 || len(e.RateLimits) != 1) {
				err = fmt.Errorf("erased %+v, want jobs in %s and one rate-limit counter", e, q)
			}
			return err
		})
		add("expire", func() error {
			// A store whose promises may be open only a moment, so this one expires now.
			short, err := New(rdb, Options{Clock: clk, Queues: []string{testQueue, otherQ}, strictSlots: true,
				MaxOpenAge: map[string]time.Duration{q: time.Millisecond}})
			if err != nil {
				return err
			}
			e := r
			e.Number = fmt.Sprintf("+3120123470%d", i)
			e.Deadline = clk.Now().Add(time.Hour)
			if _, _, err := short.Enqueue(ctx, e); err != nil {
				return err
			}
			clk.Advance(time.Second)
			res, err := short.Expire(ctx, q)
			if err == nil && len(res.Expired) == 0 {
				err = fmt.Errorf("expired nothing")
			}
			return err
		})
		for _, st := range steps {
			if err := st.run(); err != nil {
				t.Fatalf("queue %s: %s on Redis Cluster: %v", q, st.name, err)
			}
		}
	}

	res := NewReservations(rdb, "")
	if ok, err := res.Reserve(ctx, "1003", "d1", time.Minute); err != nil || !ok {
		t.Fatalf("Reserve on Redis Cluster = %v, %v", ok, err)
	}
	if ok, err := res.Renew(ctx, "1003", "d1", time.Minute); err != nil || !ok {
		t.Fatalf("Renew on Redis Cluster = %v, %v", ok, err)
	}
	if h, ok, err := res.Holder(ctx, "1003"); err != nil || !ok || h != "d1" {
		t.Fatalf("Holder on Redis Cluster = %q %v, %v", h, ok, err)
	}
	if ok, err := res.Release(ctx, "1003", "d1"); err != nil || !ok {
		t.Fatalf("Release on Redis Cluster = %v, %v", ok, err)
	}
}
