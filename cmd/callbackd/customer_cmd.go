package main

import (
	"context"
	"encoding/json"
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
)

// runCustomer answers a customer's request about their data: what is stored about their
// number (export), and deleting it (erase).
func runCustomer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runCustomerWithEnv(ctx, args, os.Environ(), clock.Real{}, stdout, stderr)
}

func runCustomerWithEnv(ctx context.Context, args, environ []string, clk clock.Clock, stdout, stderr io.Writer) int {
	usage := func(fs *flag.FlagSet) {
		fmt.Fprintln(stderr, "usage: callbackd customer export -c FILE NUMBER   (JSON of everything stored about the number)")
		fmt.Fprintln(stderr, "       callbackd customer erase -c FILE [--json] NUMBER   (delete all of it, say what was deleted)")
		fmt.Fprintln(stderr, "NUMBER in any spelling: +31 6 1234 5678, 06-12345678 (national in detector.default_country)")
		if fs != nil {
			fs.PrintDefaults()
		}
	}
	fs := flag.NewFlagSet("customer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := configFlag(fs, "", "configuration `file` (Redis address, queues, default country)")
	asJSON := fs.Bool("json", false, "erase: print what was deleted as JSON")
	fs.Usage = func() { usage(fs) }
	verb, code, done := parseVerb(fs, args, []string{"export", "erase"}, stderr)
	if done {
		return code
	}
	raw := strings.Join(fs.Args(), " ")
	if *configPath == "" || raw == "" {
		fmt.Fprintf(stderr, "callbackd customer %s: -c FILE and a NUMBER are required\n", verb)
		usage(fs)
		return 2
	}
	cfg, err := config.LoadEnvironFor(config.UseOffline, *configPath, environ)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd customer %s: loading %s: %v\n", verb, *configPath, err)
		return 1
	}
	number, err := customerNumber(raw, cfg.Detector.DefaultCountry)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd customer %s: %v\n", verb, err)
		return 2
	}
	rdb, err := daemon.RedisClient(cfg.Redis)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd customer %s: %v\n", verb, err)
		return 1
	}
	defer rdb.Close()
	store, err := daemon.NewStore(cfg, rdb, clk)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd customer %s: %v\n", verb, err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if verb == "export" {
		recs, err := store.ExportCustomer(ctx, number)
		if err != nil {
			fmt.Fprintf(stderr, "callbackd customer export: %v\n", err)
			return 1
		}
		if err := enc.Encode(recs); err != nil {
			fmt.Fprintf(stderr, "callbackd customer export: %v\n", err)
			return 1
		}
		return 0
	}
	erased, err := store.EraseCustomer(ctx, number)
	if err != nil {
		// A queue erased before the failure stays erased; running the command again finishes.
		fmt.Fprintf(stderr, "callbackd customer erase: %v (run it again: what was erased stays erased)\n", err)
		return 1
	}
	if *asJSON {
		erased.Number = phone.Mask(erased.Number)
		if err := enc.Encode(erased); err != nil {
			fmt.Fprintf(stderr, "callbackd customer erase: %v\n", err)
			return 1
		}
		return 0
	}
	printErased(stdout, erased)
	return 0
}

// customerNumber reads the number as the detector would; a number libphonenumber does not
// know as valid may still be stored (an older version's promise), so E.164 is taken as it is.
func customerNumber(raw, country string) (string, error) {
	n, err := phone.Parse(raw, country)
	if err == nil {
		return n.E164, nil
	}
	if e164, err2 := phone.ParseE164(raw); err2 == nil {
		return e164, nil
	}
	return "", fmt.Errorf("NUMBER: %w", err)
}

// printErased says what was deleted, with the number masked: the output may end up in a
// ticket or a shell history.
func printErased(w io.Writer, e queue.Erased) {
	fmt.Fprintf(w, "erased everything stored about %s\n", phone.Mask(e.Number))
	for _, q := range e.Queues {
		fmt.Fprintf(w, "  queue %s: %d promises%s, %d dedupe keys, %d outcome-stream entries, %d event-stream entries, %d dead letters\n",
			q.Queue, len(q.Jobs), idList(q.Jobs), q.Dedupe, q.Outcomes, q.Events, q.Quarantine)
	}
	fmt.Fprintf(w, "  rate-limit counters: %d\n", len(e.RateLimits))
	fmt.Fprintf(w, "  records of calls in progress: %d\n", len(e.Calls))
}

func idList(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return " (" + strings.Join(ids, ", ") + ")"
}
