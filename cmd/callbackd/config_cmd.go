package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/callbackd/callbackd/config"
)

// runConfig implements `callbackd config check -c FILE`.
func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) int {
	return runConfigWithEnv(args, os.Environ(), stdout, stderr)
}

// runConfigWithEnv takes the environment as an argument so tests can check overrides without
// touching the process environment.
func runConfigWithEnv(args, environ []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: callbackd config check -c FILE [--strict] [--number N]...")
		fmt.Fprintln(stderr, "\nValidates FILE plus CALLBACKD_* environment overrides. Prints every problem and")
		fmt.Fprintln(stderr, "exits 1, or prints the effective configuration (secrets masked) and exits 0.")
		fmt.Fprintln(stderr, "--strict also refuses the example's placeholders (change-me, its caller id, its agents).")
		fmt.Fprintln(stderr, "With --number, prints instead how each number is read (detector.default_country)")
		fmt.Fprintln(stderr, "and whether dialer.allow lets it be called back.")
	}
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			usage()
			return 0
		}
		usage()
		return 2
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage
	file := configFlag(fs, "", "configuration `FILE` to check")
	strict := fs.Bool("strict", false, "also refuse the example configuration's placeholders")
	var numbers stringList
	fs.Var(&numbers, "number", "explain the allow decision for phone number `N` (repeatable)")
	if code, done := parseFlags(fs, args[1:]); done {
		return code
	}
	if *file == "" || fs.NArg() > 0 {
		usage()
		return 2
	}
	cfg, err := config.LoadEnviron(*file, environ)
	if err != nil {
		var verr *config.ValidationError
		if !errors.As(err, &verr) {
			fmt.Fprintf(stderr, "config %s: %v\n", *file, err)
			return 1
		}
		noun := "problems"
		if len(verr.Problems) == 1 {
			noun = "problem"
		}
		fmt.Fprintf(stderr, "config %s: %d %s:\n", *file, len(verr.Problems), noun)
		for _, p := range verr.Problems {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return 1
	}
	if *strict && refuseExample(stderr, "config", *file, cfg, "") {
		return 1
	}
	if len(numbers) > 0 {
		return explainNumbers(cfg, numbers, stdout, stderr)
	}
	out, err := config.Marshal(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "config %s: %v\n", *file, err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "config %s: writing effective config: %v\n", *file, err)
		return 1
	}
	return 0
}

// explainNumbers prints the allow decision for each number, one row each. Numbers are shown
// in full: whoever runs config check typed them.
func explainNumbers(cfg *config.Config, numbers []string, stdout, stderr io.Writer) int {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tE.164\tCOUNTRY\tTYPE\tDECISION\tWHY")
	for _, raw := range numbers {
		d, err := cfg.Explain(raw)
		if err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\trefused\t%v\n", raw, err)
			continue
		}
		decision := "refused"
		if d.Allowed {
			decision = "allowed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", raw, d.Number.E164, d.Number.Region, d.Number.Type, decision, d.Reason)
	}
	fmt.Fprintf(tw, "\nrate limits (dialer.rate_limits): %s\n", cfg.Dialer.RateLimits)
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "config check: writing: %v\n", err)
		return 1
	}
	return 0
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
