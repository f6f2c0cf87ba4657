package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/internal/buildinfo"
	"github.com/callbackd/callbackd/internal/clock"
)

// runDaemon is `callbackd run -c FILE`: the daemon itself.
func runDaemon(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs, "/etc/callbackd/callbackd.yml", "configuration `file`")
	allowExample := fs.Bool("allow-example", false, "run even with the example configuration's placeholders (change-me, its caller id, its agents)")
	format := fs.String("log-format", "", "json or console (default: log.format from the config)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callbackd run -c FILE [--allow-example] [--log-format json|console]")
		fmt.Fprintln(stderr, "\nRuns the daemon: watches Asterisk, makes callback promises, rings agents and customers.")
		fmt.Fprintln(stderr, "SIGINT/SIGTERM stop claiming, let calls finish (dialer.shutdown_grace), then exit 0.")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := config.LoadEnviron(*path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "callbackd run: %v\n", err)
		return 1
	}
	if !*allowExample && refuseExample(stderr, "callbackd run:", *path, cfg, "Change them (callbackd config check --strict lists them), or pass --allow-example to run anyway.") {
		return 1
	}
	if *format != "" {
		cfg.Log.Format = *format
	}
	log, err := daemon.NewLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd run: %v\n", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	// go-redis logs its connection troubles through a process-wide logger of its own; route it
	// into ours so stderr stays one JSON object per line.
	redis.SetLogger(daemon.RedisLogger(log.Named("redis")))
	rdb, err := daemon.RedisClient(cfg.Redis)
	if err != nil {
		log.Error("redis configuration refused", zap.Error(err))
		return 1
	}
	defer func() { _ = rdb.Close() }()
	build := buildinfo.Read(version)
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clock.Real{}, Logger: log, Build: build})
	if err != nil {
		log.Error("starting failed", zap.Error(err))
		return 1
	}
	log.Info("callbackd starting", zap.String("version", build.Version), zap.String("revision", build.Revision), zap.String("config", *path),
		zap.Int("asterisks", len(cfg.Asterisk)), zap.Int("queues", len(cfg.Queues)), zap.Int("agents", len(cfg.Agents)))
	if err := d.Run(ctx); err != nil {
		log.Error("callbackd stopped with an error", zap.Error(err))
		return 1
	}
	log.Info("callbackd stopped")
	return 0
}
