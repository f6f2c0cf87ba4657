package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// openForBench is how many open promises the API is measured against.
const openForBench = 100_000

// BenchmarkV1With100kOpenPromises measures POST /promises (routing, number checks, rate
// limits, the honest quote, the merge-or-make script) and GET /promises (a page of 50 with the
// forecast's predictions) against a queue holding 100 000 due promises, through the whole
// daemon on a real listener and a real redis-server, and reports each one's p50 and p99
// latency. Ria's phone rings unanswered, so the dispatcher holds one promise at a time and the
// rest stay due, as in a backlog.
//
//	go test ./api/ -run '^$' -bench V1With100kOpen -benchtime 2000x
func BenchmarkV1With100kOpenPromises(b *testing.B) {
	r := newRig(b)
	r.pbx.SetEndpoint("PJSIP/1001", aritest.Rings())
	ctx := context.Background()
	now := r.clk.Now()
	fill := make(chan int)
	var wg sync.WaitGroup
	var failed error
	var mu sync.Mutex
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range fill {
				_, _, err := r.d.Store().Enqueue(ctx, queue.Request{Queue: "reception", Number: fmt.Sprintf("+312%08d", i),
					Reason: queue.ReasonVoicemail, Deadline: now.Add(4*time.Hour + time.Duration(i)*time.Second), MaxAttempts: 3})
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}
		}()
	}
	for i := range openForBench {
		fill <- i
	}
	close(fill)
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
	client := r.srv.Client()
	send := func(method, path string, body []byte) (time.Duration, int) {
		req, err := http.NewRequest(method, r.srv.URL+"/api/v1"+path, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+writer)
		start := clock.Real{}.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return clock.Real{}.Now().Sub(start), resp.StatusCode
	}
	report := func(b *testing.B, took []time.Duration) {
		slices.Sort(took)
		at := func(q float64) float64 {
			return float64(took[min(len(took)-1, int(q*float64(len(took))))].Microseconds()) / 1000
		}
		b.ReportMetric(at(0.50), "p50-ms")
		b.ReportMetric(at(0.99), "p99-ms")
	}
	made := 0
	b.Run("create", func(b *testing.B) {
		took := make([]time.Duration, 0, b.N)
		for b.Loop() {
			// Each number in a block of its own: the promise-per-block limit counts blocks.
			body := fmt.Appendf(nil, `{"number": "+313%05d000", "queue": "reception"}`, made%100_000)
			made++
			d, code := send("POST", "/promises", body)
			if code != http.StatusCreated && code != http.StatusOK {
				b.Fatalf("POST /promises = %d", code)
			}
			took = append(took, d)
		}
		report(b, took)
	})
	b.Run("list", func(b *testing.B) {
		took := make([]time.Duration, 0, b.N)
		for b.Loop() {
			d, code := send("GET", "/promises?queue=reception&state=pending&limit=50", nil)
			if code != http.StatusOK {
				b.Fatalf("GET /promises = %d", code)
			}
			took = append(took, d)
		}
		report(b, took)
	})
}
