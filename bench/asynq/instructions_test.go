package asynqbench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// BenchmarkServerInstructions counts the instructions redis-server executes per enqueue, per
// claim and per complete of callbackd's store, under valgrind's callgrind. Unlike a time, the
// count hardly moves with whatever else the machine is doing, so two versions of the scripts
// can be told apart by a few percent on a shared machine. It needs valgrind and skips without
// it: `cd bench/asynq && go test -run '^$' -bench ServerInstructions -benchtime 1x .`.
func BenchmarkServerInstructions(b *testing.B) {
	if _, err := exec.LookPath("valgrind"); err != nil {
		b.Skip("valgrind is not installed")
	}
	out := filepath.Join(b.TempDir(), "callgrind.out")
	srv := redistest.Start(b, redistest.Options{Wrapper: []string{"valgrind", "--tool=callgrind",
		"--callgrind-out-file=" + out}})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: poolSize})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	pid := strconv.Itoa(srv.PID())
	// dump ends a measured part: callgrind writes what it counted since the last dump.
	dump := func(part string) {
		if out, err := exec.Command("callgrind_control", "-d", part, pid).CombinedOutput(); err != nil {
			b.Fatalf("callgrind_control: %v: %s", err, out)
		}
	}
	cb := newCallbackd(b, rdb)
	// One whole lifetime first, so the scripts are loaded and compiled before any count.
	if err := cb.enqueue(ctx, jobs+1); err != nil {
		b.Fatal(err)
	}
	j, err := cb.s.Claim(ctx, queueName, queue.ClaimOptions{Worker: "w", Lease: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cb.s.Complete(ctx, j.Ref(), j.Lease.Token, queue.StateFailed, "bench"); err != nil {
		b.Fatal(err)
	}
	dump("warm-up")
	enqueueRate(b, cb, 8)
	dump("enqueue")
	claimed := make(chan *queue.Job, jobs)
	var wg sync.WaitGroup
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := cb.s.Claim(ctx, queueName, queue.ClaimOptions{Worker: "w", Lease: time.Minute})
				if err != nil {
					return
				}
				claimed <- j
			}
		}()
	}
	wg.Wait()
	close(claimed)
	if len(claimed) != jobs {
		b.Fatalf("claimed %d of %d", len(claimed), jobs)
	}
	dump("claim")
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range claimed {
				if _, err := cb.s.Complete(ctx, j.Ref(), j.Lease.Token, queue.StateFailed, "bench"); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	dump("complete")
	counts := map[string]float64{}
	files, _ := filepath.Glob(out + ".*")
	for _, f := range files {
		part, n, err := callgrindPart(f)
		if err != nil {
			b.Fatal(err)
		}
		counts[part] = n
	}
	var total float64
	for _, part := range []string{"enqueue", "claim", "complete"} {
		if counts[part] == 0 {
			b.Fatalf("no callgrind dump for %s among %v", part, files)
		}
		total += counts[part]
		fmt.Printf("%-32s %12.0f instructions\n", "redis-server per "+part, counts[part]/jobs)
	}
	fmt.Printf("%-32s %12.0f instructions\n", "redis-server per lifetime", total/jobs)
}

// callgrindPart reads a callgrind dump's trigger ("dump <part>") and its instruction total.
func callgrindPart(path string) (string, float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	var part string
	var total float64
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "desc: Trigger: dump "); ok {
			part = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "summary: "); ok {
			if total, err = strconv.ParseFloat(strings.Fields(v)[0], 64); err != nil {
				return "", 0, fmt.Errorf("%s: summary %q: %w", path, v, err)
			}
		}
	}
	return part, total, nil
}
