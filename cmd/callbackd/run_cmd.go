package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/logmask"
)

// runDaemon is `callbackd run -c FILE`: the daemon itself.
func runDaemon(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "/etc/callbackd/callbackd.yml", "configuration `file`")
	format := fs.String("log-format", "", "json or console (default: log.format from the config)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callbackd run -c FILE [--log-format json|console]")
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
	if *format != "" {
		cfg.Log.Format = *format
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd run: %v\n", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	// go-redis logs its connection troubles through a process-wide logger of its own; route it
	// into ours so stderr stays one JSON object per line.
	redis.SetLogger(redisLog{log.Named("redis")})
	rdb, err := daemon.RedisClient(cfg.Redis)
	if err != nil {
		log.Error("redis configuration refused", zap.Error(err))
		return 1
	}
	defer func() { _ = rdb.Close() }()
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clock.Real{}, Logger: log})
	if err != nil {
		log.Error("starting failed", zap.Error(err))
		return 1
	}
	log.Info("callbackd starting", zap.String("version", version), zap.String("config", *path),
		zap.Int("asterisks", len(cfg.Asterisk)), zap.Int("queues", len(cfg.Queues)), zap.Int("agents", len(cfg.Agents)))
	if err := d.Run(ctx); err != nil {
		log.Error("callbackd stopped with an error", zap.Error(err))
		return 1
	}
	log.Info("callbackd stopped")
	return 0
}

// redisLog adapts zap to go-redis' logger interface.
type redisLog struct{ log *zap.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// newLogger builds the zap logger of log: level and json or console. Phone numbers are masked
// where they are logged (phone.Mask), and, unless log.mask_numbers is false, once more in every
// message, field and error (logmask), so an error quoting a dial string leaks nothing either.
func newLogger(l config.Log, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(l.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	var enc zapcore.Encoder
	switch l.Format {
	case "console":
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	case "json", "":
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	default:
		return nil, fmt.Errorf("--log-format must be json or console, got %q", l.Format)
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(w), level)
	if l.MaskNumbers {
		core = logmask.Core(core)
	}
	return zap.New(core), nil
}
