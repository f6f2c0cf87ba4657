package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/callbackd/callbackd/demo"
)

// runDemo is `callbackd demo`: flags in, exit code out; the scenario is package demo.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisAddr := fs.String("redis", "", "use the Redis at `host:port` instead of an embedded one (keys under callbackd-demo)")
	speed := fs.Int("speed", 30, "simulated seconds per wall-clock second")
	serve := fs.Bool("serve", false, "keep the fake PBX and the daemon running after the scripted calls, until Ctrl-C, with the supervisor page (its address and a token are printed)")
	listen := fs.String("listen", "127.0.0.1:0", "serve /metrics, /healthz and /readyz on `host:port` while the demo runs (\"-\": not at all)")
	verbose := fs.Bool("v", false, "also print the daemon's own log (console format) on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callbackd demo [--redis host:port] [--speed N] [--listen host:port] [--serve] [-v]")
		fmt.Fprintln(stderr, "\nRuns a fake Asterisk with scripted customer calls and the callbackd pipeline against it")
		fmt.Fprintln(stderr, "(ARI over HTTP/WebSocket, detector, promise store in Redis), and prints what it did.")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 || *speed < 1 || *speed > 1000 {
		fmt.Fprintln(stderr, "callbackd demo: --speed must be 1…1000 and no arguments are taken")
		fs.Usage()
		return 2
	}
	// A served demo's token: CALLBACKD_HTTP_TOKEN when set (a Prometheus scraping it needs to
	// know it), else one made up for the run.
	set := demo.Settings{RedisAddr: *redisAddr, Speed: *speed, Listen: *listen, Serve: *serve, Token: os.Getenv("CALLBACKD_HTTP_TOKEN")}
	if *verbose {
		set.Log = stderr
	}
	if err := demo.Run(ctx, set, stdout); err != nil {
		fmt.Fprintf(stderr, "callbackd demo: %v\n", err)
		return 1
	}
	return 0
}
