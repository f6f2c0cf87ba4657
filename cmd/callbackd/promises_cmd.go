package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
	"github.com/callbackd/callbackd/queue/promisetable"
)

// runPromises lists promises from Redis: what an SRE or supervisor looks at first when asked
// "was this customer's callback made?".
func runPromises(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runPromisesWithEnv(ctx, args, os.Environ(), clock.Real{}, stdout, stderr)
}

func runPromisesWithEnv(ctx context.Context, args, environ []string, clk clock.Clock, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("promises", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := configFlag(fs, "", "configuration `file` (Redis address and queues)")
	queueName := fs.String("queue", "", "only this `queue` (default: every configured queue)")
	states := fs.String("state", "pending,dialing,connected", "comma-separated `states` to list, or \"all\"")
	limit := fs.Int("limit", 100, "at most this many promises per queue (1–1000)")
	asJSON := fs.Bool("json", false, "print one JSON object per promise instead of a table")
	unmask := fs.Bool("unmask", false, "show customer numbers in full (they are masked by default, as in logs)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callbackd promises -c FILE [--queue Q] [--state pending,dialing,...|all] [--limit N] [--json] [--unmask]")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	wanted, err := parseStates(*states)
	if err == nil && (*configPath == "" || fs.NArg() > 0 || *limit < 1 || *limit > 1000) {
		err = errors.New("-c FILE is required, --limit must be 1…1000, and no arguments are taken")
	}
	if err != nil {
		fmt.Fprintf(stderr, "callbackd promises: %v\n", err)
		fs.Usage()
		return 2
	}
	cfg, err := config.LoadEnvironFor(config.UseOffline, *configPath, environ)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd promises: loading %s: %v\n", *configPath, err)
		return 1
	}
	queues := cfg.Queues
	if *queueName != "" {
		q, ok := cfg.Queue(*queueName)
		if !ok {
			fmt.Fprintf(stderr, "callbackd promises: no queue named %q in %s\n", *queueName, *configPath)
			return 1
		}
		queues = []config.Queue{q}
	}
	rdb, err := daemon.RedisClient(cfg.Redis)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd promises: %v\n", err)
		return 1
	}
	defer rdb.Close()
	store, err := daemon.NewStore(cfg, rdb, clk)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd promises: %v\n", err)
		return 1
	}
	var jobs []queue.Job
	// A record that cannot be read is left out and named after the list, which shows the
	// rest; the exit code still says that something was left out.
	var skipped []error
	for _, q := range queues {
		list, err := store.List(ctx, q.Name, queue.ListOptions{States: wanted, Limit: *limit})
		if errors.Is(err, queue.ErrSkipped) {
			skipped = append(skipped, err)
		} else if err != nil {
			fmt.Fprintf(stderr, "callbackd promises: %v\n", err)
			return 1
		}
		jobs = append(jobs, list...)
	}
	defer func() {
		for _, err := range skipped {
			fmt.Fprintf(stderr, "callbackd promises: %v\n", err)
		}
	}()
	code := 0
	if len(skipped) > 0 {
		code = 1
	}
	show := phone.Mask
	if *unmask {
		show = func(s string) string { return s }
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, j := range jobs {
			j.Number = show(j.Number)
			if err := enc.Encode(j); err != nil {
				fmt.Fprintf(stderr, "callbackd promises: %v\n", err)
				return 1
			}
		}
		return code
	}
	promisetable.Print(stdout, jobs, clk.Now(), show)
	return code
}

// parseStates reads --state: a comma-separated list of states, or all (nil).
func parseStates(list string) ([]queue.State, error) {
	if list == "all" {
		return nil, nil
	}
	var out []queue.State
	for _, s := range strings.Split(list, ",") {
		st, err := queue.ParseState(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("--state: %w, or all", err)
		}
		out = append(out, st)
	}
	return out, nil
}
