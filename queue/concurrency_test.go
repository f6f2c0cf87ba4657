package queue

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestConcurrentClaimersNeverShareAJob(t *testing.T) {
	f := newFixture(t)
	const jobs, workers = 500, 32
	for i := 0; i < jobs; i++ {
		r := request(fmt.Sprintf("+3120%07d", i))
		r.Deadline = t0.Add(time.Duration(i%97+1) * time.Minute)
		f.enqueue(t, r)
	}
	var mu sync.Mutex
	claimedBy := map[string]string{}
	tokens := map[int64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(worker string) {
			defer wg.Done()
			for {
				j, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: worker, Lease: time.Minute})
				if errors.Is(err, ErrEmpty) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if prev, dup := claimedBy[j.ID]; dup {
					errs <- fmt.Errorf("job %s claimed by %s and %s", j.ID, prev, worker)
				}
				if tokens[j.Lease.Token] {
					errs <- fmt.Errorf("fencing token %d issued twice", j.Lease.Token)
				}
				claimedBy[j.ID], tokens[j.Lease.Token] = worker, true
				mu.Unlock()
			}
		}(fmt.Sprintf("w%d", w))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(claimedBy) != jobs {
		t.Errorf("%d distinct jobs claimed, want all %d", len(claimedBy), jobs)
	}
}

func TestConcurrentReclaimersTakeEachLeaseBackOnce(t *testing.T) {
	f := newFixture(t)
	const jobs, reclaimers = 250, 16 // more than one reclaim batch
	for i := 0; i < jobs; i++ {
		f.enqueue(t, request(fmt.Sprintf("+3120%07d", i)))
		f.claim(t, ClaimOptions{})
	}
	f.clk.Advance(2 * time.Minute)
	var wg sync.WaitGroup
	results := make(chan ReclaimResult, reclaimers)
	for i := 0; i < reclaimers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := f.s.Reclaim(f.ctx, testQueue)
			if err != nil {
				t.Error(err)
			}
			results <- n
		}()
	}
	wg.Wait()
	close(results)
	total := 0
	for n := range results {
		total += n.Reclaimed
	}
	if total != jobs {
		t.Errorf("reclaimed %d leases in all, want each of %d exactly once", total, jobs)
	}
	st, err := f.s.Stats(f.ctx, testQueue)
	wantErr(t, err, nil)
	if st.Ready != jobs || st.Leased != 0 {
		t.Errorf("after reclaim: ready %d leased %d", st.Ready, st.Leased)
	}
}

func TestConcurrentRequestsForOneNumberMakeOnePromise(t *testing.T) {
	f := newFixture(t)
	const requests = 32
	var wg sync.WaitGroup
	type result struct {
		id     string
		merged bool
	}
	results := make(chan result, requests)
	for i := 0; i < requests; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := request(alice)
			r.Deadline = t0.Add(time.Duration(60+i) * time.Minute)
			j, res, err := f.s.Enqueue(f.ctx, r)
			if err != nil {
				t.Error(err)
				return
			}
			results <- result{j.ID, res.Merged}
		}(i)
	}
	wg.Wait()
	close(results)
	ids := map[string]bool{}
	fresh := 0
	for r := range results {
		ids[r.id] = true
		if !r.merged {
			fresh++
		}
	}
	if len(ids) != 1 || fresh != 1 {
		t.Fatalf("%d promises, %d reported as new; want one promise and %d merges", len(ids), fresh, requests-1)
	}
	for id := range ids {
		if j := f.get(t, Ref{Queue: testQueue, ID: id}); !j.Deadline.Equal(t0.Add(time.Hour)) {
			t.Errorf("deadline %v, want the earliest asked for (%v)", j.Deadline, t0.Add(time.Hour))
		}
	}
}
