package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/trace"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/netcause"
	"github.com/callbackd/callbackd/internal/stasisapp"
)

// defaultRecordApp is the recorder's own ARI application. It must differ from the daemon's
// monitor app: two sockets for one app name make Asterisk replace the first (the daemon's).
const defaultRecordApp = "callbackd-record"

// runRecord writes every event an Asterisk sends to a subscribeAll application as a trace in
// the format replay reads, so an administrator can record their own PBX's calls and check
// what the detector makes of them.
func runRecord(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := configFlag(fs, "", "configuration `file` (its asterisk list says where and how to connect)")
	name := fs.String("asterisk", "", "`name` of the asterisk entry to record (default: the first)")
	out := fs.String("out", "", "write the trace to `file` instead of stdout")
	app := fs.String("app", defaultRecordApp, "ARI application `name` to record as (never the daemon's monitor app)")
	duration := fs.Duration("duration", 0, "stop after this long (default: until Ctrl-C)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callbackd record -c FILE [--asterisk NAME] [--out FILE.jsonl] [--duration D]")
		fmt.Fprintln(stderr, "\nRecords the ARI events of all calls as JSON lines; `callbackd replay --trace FILE` runs them through the detector.")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *configPath == "" || fs.NArg() > 0 || *duration < 0 || *app == "" {
		fmt.Fprintln(stderr, "callbackd record: -c FILE is required, --duration must not be negative, and no arguments are taken")
		fs.Usage()
		return 2
	}
	cfg, err := config.LoadEnviron(*configPath, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "callbackd record: loading %s: %v\n", *configPath, err)
		return 1
	}
	target, err := pickAsterisk(cfg, *name)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd record: %v\n", err)
		return 1
	}
	// The names as configured (an older daemon's) and as this host's daemon registers them.
	monitor, control := stasisapp.Names(target.MonitorApp, target.ControlApp, daemon.InstanceID(cfg, os.Hostname))
	if target.MonitorApp == *app || target.ControlApp == *app || monitor == *app || control == *app {
		fmt.Fprintf(stderr, "callbackd record: --app %s is the daemon's own application; recording as it would disconnect the daemon\n", *app)
		return 2
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "callbackd record: %v\n", err)
			return 1
		}
		defer f.Close()
		w = f
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := record(ctx, target, *app, clock.Real{}, w, stderr); err != nil {
		fmt.Fprintf(stderr, "callbackd record: %v\n", err)
		return 1
	}
	return 0
}

func pickAsterisk(cfg *config.Config, name string) (config.Asterisk, error) {
	for _, a := range cfg.Asterisk {
		if name == "" || a.Name == name {
			return a, nil
		}
	}
	return config.Asterisk{}, fmt.Errorf("no asterisk entry is named %q", name)
}

// record connects as app (subscribed to everything, no control app) and writes trace lines
// until ctx ends.
func record(ctx context.Context, a config.Asterisk, app string, clk clock.Clock, w io.Writer, stderr io.Writer) error {
	rec := recorder{tw: trace.NewWriter(w, clk), app: app}
	o := daemon.ConnOptions(a, clk, nil)
	o.MonitorApp = app
	// The recorder keeps every event: a trace is evidence, the filter is an optimisation.
	o.MonitorEvents = []ari.EventType{}
	o.OnState = func(name string, up bool) {
		state := "closed"
		if up {
			state = "connected"
		}
		rec.ws(state)
		fmt.Fprintf(stderr, "callbackd record: %s: %s\n", name, state)
	}
	// Until the first connection succeeds there is nothing to record: an absent PBX or a wrong
	// password ends the recording at once with the reason, instead of an empty trace and exit
	// 0. After that a dropped connection is part of what is recorded, and it reconnects.
	ctx, giveUp := context.WithCancelCause(ctx)
	defer giveUp(nil)
	connected := false
	onState := o.OnState
	o.OnState = func(name string, up bool) {
		connected = connected || up
		onState(name, up)
	}
	o.OnFailure = func(name string, err error) {
		if !connected {
			giveUp(fmt.Errorf("connecting to asterisk %s at %s: %s", name, a.URL, netcause.Describe(err)))
		}
	}
	conn, err := ari.NewConn(o)
	if err != nil {
		return err
	}
	runErr := conn.Run(ctx, rec, nil)
	if err := rec.tw.Err(); err != nil {
		return fmt.Errorf("writing the trace: %w", err)
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
		return runErr
	}
	return nil
}

// recorder is the ari.Handler of the recording: every event the app receives and every resync
// becomes a line. A failed write is not reported here, where a handler cannot stop anything;
// the writer keeps the first error and record returns it.
type recorder struct {
	tw  *trace.Writer
	app string
}

func (r recorder) HandleEvent(ev *ari.Event) {
	_ = r.tw.Write(trace.Line{Kind: trace.KindEvent, App: r.app, Event: ev.Raw})
}

func (r recorder) Resync(snap ari.Snapshot) {
	_ = r.tw.Write(trace.Line{Kind: trace.KindNote, Text: fmt.Sprintf("resync: asterisk %s, %d channels, %d bridges, restarted=%v",
		snap.AsteriskID, len(snap.Channels), len(snap.Bridges), snap.Restarted)})
}

func (r recorder) ws(state string) {
	_ = r.tw.Write(trace.Line{Kind: trace.KindWS, App: r.app, State: state, URL: "/ari/events?app=" + r.app + "&subscribeAll=true"})
}
