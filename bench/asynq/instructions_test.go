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

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/redistest"
)

// BenchmarkServerInstructions counts the instructions redis-server executes per enqueue, per
// claim and per complete of callbackd's store, of the floor of its commands (see floor) and of
// asynq (per enqueue, and per drained task: dequeue, completion and what its server's
// background work sends meanwhile), under valgrind's callgrind, and prints the ratios to
// asynq. Unlike a time, the count hardly moves with whatever else the machine is doing, so two
// versions of the scripts can be told apart by a few percent on a shared machine. It needs
// valgrind and skips without it: `cd bench/asynq && go test -run '^$' -bench
// ServerInstructions -benchtime 1x .` (CALLGRIND_DIR: see startCallgrind).
func BenchmarkServerInstructions(b *testing.B) {
	cg := startCallgrind(b)
	client, dump := cg.client, cg.dump
	ctx := context.Background()

	// The floor's figures stand for the store's commands only while it sends them.
	checkFloor(b, newRig(b, redistest.Options{}))

	cb := newCallbackd(b, client())
	// One whole lifetime first, so the scripts are loaded and compiled before any count.
	lifetime(b, cb, cb.claim, cb.complete)
	dump("warm-up")
	enqueueRate(b, cb, 8)
	dump("enqueue")
	drainIn(b, "", cb.claim, cb.complete, dump)

	fl := newFloor(client())
	lifetime(b, fl, fl.claim, fl.complete)
	dump("floor warm-up")
	enqueueRate(b, fl, 8)
	dump("floor enqueue")
	drainIn(b, "floor ", fl.claim, fl.complete, dump)

	aq := newAsynq(client())
	if err := aq.enqueue(ctx, jobs+1); err != nil {
		b.Fatal(err)
	}
	if _, err := aq.drain(ctx, 1, 10); err != nil {
		b.Fatal(err)
	}
	dump("asynq warm-up")
	enqueueRate(b, aq, 8)
	dump("asynq enqueue")
	drainRate(b, aq, 10)
	dump("asynq drain")

	counts := cg.counts(b)
	per := func(part string) float64 {
		if counts[part] == 0 {
			b.Fatalf("no callgrind dump for %s", part)
		}
		return counts[part] / jobs
	}
	row := func(name string, n float64) { fmt.Printf("%-44s %12.0f instructions\n", name, n) }
	cbEnq, cbDrain := per("enqueue"), per("claim")+per("complete")
	flEnq, flDrain := per("floor enqueue"), per("floor claim")+per("floor complete")
	aqEnq, aqDrain := per("asynq enqueue"), per("asynq drain")
	row("redis-server per enqueue", cbEnq)
	row("redis-server per claim", per("claim"))
	row("redis-server per complete", per("complete"))
	row("redis-server per lifetime", cbEnq+cbDrain)
	row("floor of its commands, per enqueue", flEnq)
	row("floor of its commands, per claim", per("floor claim"))
	row("floor of its commands, per complete", per("floor complete"))
	row("floor of its commands, per lifetime", flEnq+flDrain)
	row("asynq per enqueue", aqEnq)
	row("asynq per drained task", aqDrain)
	row("asynq per lifetime", aqEnq+aqDrain)
	ratio := func(name string, cb, fl, aq float64) {
		fmt.Printf("%-44s callbackd %.2f×, floor %.2f× asynq's\n", name, cb/aq, fl/aq)
	}
	ratio("instructions per enqueue", cbEnq, flEnq, aqEnq)
	ratio("instructions per drained promise", cbDrain, flDrain, aqDrain)
	ratio("instructions per lifetime", cbEnq+cbDrain, flEnq+flDrain, aqEnq+aqDrain)
}

// callgrindServer is a redis-server run under valgrind's callgrind, whose counts are read by
// parts: dump ends a part, and counts answers each part's instructions by its name.
type callgrindServer struct {
	srv    *redistest.Server
	out    string
	client func() *redis.Client
	dump   func(part string)
	parts  map[string]callgrindCount // by dump file, each read once
}

type callgrindCount struct {
	part string
	n    float64
}

// startCallgrind starts one; it skips the benchmark without valgrind. With CALLGRIND_DIR set,
// the dumps stay in that folder for callgrind_annotate to say which of Redis' functions the
// instructions went to.
func startCallgrind(b *testing.B) *callgrindServer {
	if _, err := exec.LookPath("valgrind"); err != nil {
		b.Skip("valgrind is not installed")
	}
	wrapper := []string{"valgrind", "--tool=callgrind"}
	dir := os.Getenv("CALLGRIND_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		// Each dump then names its functions itself instead of by a number an earlier dump
		// defined, so callgrind_annotate can read any one of them alone.
		wrapper = append(wrapper, "--compress-strings=no", "--compress-pos=no")
	}
	cg := &callgrindServer{out: filepath.Join(dir, "callgrind.out"), parts: map[string]callgrindCount{}}
	cg.srv = redistest.Start(b, redistest.Options{Wrapper: append(wrapper, "--callgrind-out-file="+cg.out)})
	cg.client = func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: cg.srv.Addr(), PoolSize: poolSize})
		b.Cleanup(func() { _ = c.Close() })
		return c
	}
	pid := strconv.Itoa(cg.srv.PID())
	cg.dump = func(part string) {
		if out, err := exec.Command("callgrind_control", "-d", part, pid).CombinedOutput(); err != nil {
			b.Fatalf("callgrind_control: %v: %s", err, out)
		}
	}
	return cg
}

// counts answers the instructions of every part dumped so far, by its name.
func (cg *callgrindServer) counts(b testing.TB) map[string]float64 {
	files, _ := filepath.Glob(cg.out + ".*")
	for _, f := range files {
		if _, ok := cg.parts[f]; ok {
			continue
		}
		part, n, err := callgrindPart(f)
		if err != nil {
			b.Fatal(err)
		}
		cg.parts[f] = callgrindCount{part, n}
	}
	counts := map[string]float64{}
	for _, c := range cg.parts {
		counts[c.part] = c.n
	}
	return counts
}

// lifetime enqueues, claims and completes one job of s, so that its scripts are loaded and
// compiled before anything is counted.
func lifetime[J any](b testing.TB, s system, claim func(context.Context) (J, error),
	complete func(context.Context, J) error) {
	ctx := context.Background()
	if err := s.enqueue(ctx, jobs+1); err != nil {
		b.Fatal(err)
	}
	j, err := claim(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := complete(ctx, j); err != nil {
		b.Fatal(err)
	}
}

// drainIn claims every enqueued job with 10 goroutines, then completes them all with 10, and
// dumps the count after each as the parts prefix+"claim" and prefix+"complete".
func drainIn[J any](b testing.TB, prefix string, claim func(context.Context) (J, error),
	complete func(context.Context, J) error, dump func(string)) {
	ctx := context.Background()
	claimed := make(chan J, jobs)
	var wg sync.WaitGroup
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := claim(ctx)
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
		b.Fatalf("%sclaim: claimed %d of %d", prefix, len(claimed), jobs)
	}
	dump(prefix + "claim")
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range claimed {
				if err := complete(ctx, j); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	dump(prefix + "complete")
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
