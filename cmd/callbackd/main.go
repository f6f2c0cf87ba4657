// Command callbackd turns unanswered customer calls on Asterisk into callback promises and
// keeps them. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/callbackd/callbackd/internal/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// command is one subcommand. run returns the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"demo":       {summary: "demo [--redis ADDR] [--speed N] [--listen ADDR] [--serve] [-v]: the daemon on a fake Asterisk with scripted calls, promises kept", run: runDemo},
		"agent":      {summary: "agent login|logout|pause|resume|list -c FILE [--json] [AGENT]: set or show agents' presence in Redis", run: runAgent},
		"completion": {summary: "completion bash|zsh: print a shell completion script", run: runCompletion},
		"config":     {summary: "config check -c FILE: validate a configuration file", run: runConfig},
		"customer":   {summary: "customer export|erase -c FILE NUMBER: everything stored about one number, as JSON, or deleted", run: runCustomer},
		"promise":    {summary: "promise create|list|show|cancel|reschedule -c FILE [--json] …: promises through the running daemon's API", run: runPromise},
		"promises":   {summary: "promises -c FILE [--queue Q] [--state S] [--limit N] [--json] [--unmask]: list the promises in Redis", run: runPromises},
		"record":     {summary: "record -c FILE [--asterisk NAME] [--out F] [--duration D] [--app NAME]: write a PBX's ARI events as a trace", run: runRecord},
		"replay":     {summary: "replay --trace FILE.jsonl [-c FILE] [--app NAME]: run recorded ARI events through the detector", run: runReplay},
		"run":        {summary: "run -c FILE: the daemon (watch Asterisk, make promises, call back)", run: runDaemon},
		"version":    {summary: "print the version", run: runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a graceful stop; after it the handler is gone, so a second one
	// ends the process at once (leases bring back whatever was in progress).
	go func() { <-ctx.Done(); stop() }()
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return runVersion(ctx, nil, stdout, stderr)
	}
	if len(args) > 1 && args[0] == "help" {
		// `help CMD` is `CMD -h`; config's usage covers its one verb.
		if _, ok := cmds[args[1]]; !ok {
			fmt.Fprintf(stderr, "callbackd help: unknown command %q\n\n", args[1])
			usage(stderr, cmds)
			return 2
		}
		return cmds[args[1]].run(ctx, []string{"-h"}, stdout, stderr)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "callbackd: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

// parseFlags parses a subcommand's flags. When done, the command ends with code: 0 after -h
// (the usage has been printed), 2 for a flag it does not know (the flag package said which).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	}
	return 2, true
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: callbackd COMMAND [flags]   (callbackd help COMMAND, callbackd --version)")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callbackd version   (or callbackd --version)")
		fmt.Fprintln(stderr, "\nPrints the version, the Go version it was built with and the revision.")
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	fmt.Fprintln(stdout, buildinfo.Read(version))
	return 0
}
