package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/ari/trace"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
)

// defaultMonitorApp is used when a recording does not say which socket subscribed to everything.
const defaultMonitorApp = "callbackd-monitor"

// runReplay feeds a recorded ARI trace through the detector and prints what it detects, one
// JSON object per line: the tool an administrator uses to check the detector on their PBX.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tracePath := fs.String("trace", "", "recorded trace (JSON lines) to replay")
	configPath := configFlag(fs, "", "configuration `file` whose detector settings to use")
	maxMalformed := fs.Float64("max-malformed", 10, "exit 1 when more than this `percent` of the trace's lines are malformed (0: any)")
	app := fs.String("app", "", "monitor application whose events to replay (default: the subscribeAll socket of the trace)")
	explain := fs.Bool("explain", false, "add to each request the callback queue it would go to and the rule that chose it (needs --config)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callbackd replay --trace FILE.jsonl [-c FILE] [--app NAME] [--max-malformed PERCENT] [--explain]")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "callbackd replay: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *maxMalformed < 0 || *maxMalformed > 100 {
		fmt.Fprintf(stderr, "callbackd replay: --max-malformed %v: want a percentage from 0 to 100\n", *maxMalformed)
		return 2
	}
	if *tracePath == "" {
		fmt.Fprintln(stderr, "callbackd replay: --trace is required")
		fs.Usage()
		return 2
	}
	if *explain && *configPath == "" {
		fmt.Fprintln(stderr, "callbackd replay: --explain needs --config: the queues and routes are in the configuration")
		fs.Usage()
		return 2
	}

	opts := detect.Options{}
	var monitors []string
	out := &jsonSink{enc: json.NewEncoder(stdout)}
	if *configPath != "" {
		cfg, err := loadConfig(*configPath)
		if err == nil {
			opts, monitors, err = detectorOptions(*configPath, cfg)
		}
		if err != nil {
			fmt.Fprintf(stderr, "callbackd replay: %v\n", err)
			return 1
		}
		if *explain {
			policy := dialer.PolicyFrom(cfg)
			out.route = policy.Route
		}
	}
	data, err := os.ReadFile(*tracePath)
	if err != nil {
		fmt.Fprintf(stderr, "callbackd replay: reading trace: %v\n", err)
		return 1
	}
	apps, err := trace.ScanApps(bytes.NewReader(data))
	if err != nil {
		fmt.Fprintf(stderr, "callbackd replay: %v\n", err)
		return 1
	}
	controlApps := opts.ControlApps
	if controlApps == nil {
		controlApps = []string{"callbackd"}
	}
	monitor := *app
	if monitor == "" {
		monitor = chooseMonitorApp(apps, monitors, controlApps)
	}
	// Every other application in a recording is a socket of the daemon itself (the control
	// app): its channels are callback legs, never customer calls.
	for _, a := range apps.Events {
		if a != monitor {
			controlApps = append(controlApps, a)
		}
	}
	opts.ControlApps = controlApps

	// The recording's own timestamps drive the clock, so idle expiry behaves as it did live.
	clk := clock.NewFake(time.Time{})
	opts.Sink, opts.Clock = out, clk
	det := detect.New(opts)
	st, err := trace.Read(bytes.NewReader(data), monitor, func(ev *ari.Event) {
		if ctx.Err() != nil {
			return
		}
		if t, err := ev.Time(); err == nil {
			clk.Set(t)
		}
		det.HandleEvent(ev)
	})
	for _, le := range st.Errors {
		fmt.Fprintf(stderr, "callbackd replay: %s: skipped %v\n", *tracePath, le)
	}
	if err != nil {
		fmt.Fprintf(stderr, "callbackd replay: %v\n", err)
		return 1
	}
	if out.err != nil {
		fmt.Fprintf(stderr, "callbackd replay: writing output: %v\n", out.err)
		return 1
	}
	ds := det.Stats()
	fmt.Fprintf(stderr, "callbackd replay: app %s: %d events, %d malformed lines, %d unknown types, %d malformed events, %d late events, %d calls, %d requests, %d resolved, %d calls still open\n",
		monitor, st.Events, st.Malformed, ds.Unknown, ds.Malformed, ds.Late, ds.Calls, ds.Requests, out.resolved, det.Tracked())
	// A few damaged lines are worth skipping (a recording cut off mid-line); a file that is
	// mostly not a recording is the wrong file, and a script must not read its empty output
	// as "the detector found nothing".
	if st.Malformed > 0 && float64(st.Malformed)*100 > *maxMalformed*float64(st.Lines) {
		fmt.Fprintf(stderr, "callbackd replay: %s: %d of %d lines are malformed (more than --max-malformed %v%%): is it a trace written by callbackd record?\n",
			*tracePath, st.Malformed, st.Lines, *maxMalformed)
		return 1
	}
	if st.Events == 0 {
		fmt.Fprintf(stderr, "callbackd replay: no events for app %q (apps with events: %v); choose one with --app\n", monitor, apps.Events)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "callbackd replay: interrupted; the output above is incomplete")
		return 1
	}
	return 0
}

// chooseMonitorApp picks the monitor application of a recording: the socket that subscribed to
// everything, else a configured monitor app or the default name, else the first application
// that is not ours.
func chooseMonitorApp(apps trace.Apps, configured, control []string) string {
	if len(apps.Monitor) > 0 {
		return apps.Monitor[0]
	}
	for _, m := range append(configured, defaultMonitorApp) {
		for _, a := range apps.Events {
			if a == m {
				return a
			}
		}
	}
	for _, a := range apps.Events {
		isControl := false
		for _, c := range control {
			isControl = isControl || a == c
		}
		if !isControl {
			return a
		}
	}
	return defaultMonitorApp
}

// jsonSink prints requests and resolutions as JSON lines.
type jsonSink struct {
	enc *json.Encoder
	err error
	// route, with --explain, says which callback queue a request goes to and why.
	route func(detect.Request) (dialer.QueuePolicy, string)
	// asked is what the recording's requests asked for, by number and target: a later call
	// reaching one is printed as resolved. The daemon keeps this in Redis (queue.Asked);
	// offline, one recording's memory is enough.
	asked    map[[2]string]bool
	resolved int
}

type requestLine struct {
	Number   string `json:"number"`
	Reason   string `json:"reason"`
	Target   string `json:"target"`
	LinkedID string `json:"linkedid"`
	At       string `json:"at"`
	// With --explain: what the customer asked for, and where the promise would go.
	AsteriskQueue string `json:"asterisk_queue,omitempty"`
	DialString    string `json:"dial_string,omitempty"`
	DID           string `json:"did,omitempty"`
	Context       string `json:"context,omitempty"`
	Queue         string `json:"queue,omitempty"`
	Rule          string `json:"rule,omitempty"`
}

type resolvedLine struct {
	Resolved bool   `json:"resolved"`
	Number   string `json:"number"`
	Target   string `json:"target"`
	LinkedID string `json:"linkedid"`
	At       string `json:"at"`
}

func (s *jsonSink) Request(r detect.Request) {
	l := requestLine{Number: r.Number, Reason: string(r.Reason), Target: r.Target, LinkedID: r.LinkedID,
		At: r.At.UTC().Format(time.RFC3339Nano)}
	if s.route != nil {
		q, rule := s.route(r)
		l.AsteriskQueue, l.DialString, l.DID, l.Context = r.AsteriskQueue, r.DialString, r.DID, r.Context
		l.Queue, l.Rule = q.Name, rule
	}
	if s.asked == nil {
		s.asked = map[[2]string]bool{}
	}
	s.asked[[2]string{r.Number, r.Target}] = true
	s.write(l)
}

func (s *jsonSink) Reached(r detect.Reach) {
	if !s.asked[[2]string{r.Number, r.Target}] {
		return
	}
	delete(s.asked, [2]string{r.Number, r.Target})
	s.resolved++
	s.write(resolvedLine{Resolved: true, Number: r.Number, Target: r.Target, LinkedID: r.LinkedID,
		At: r.At.UTC().Format(time.RFC3339Nano)})
}

func (s *jsonSink) write(v any) {
	if s.err == nil {
		s.err = s.enc.Encode(v)
	}
}

// loadConfig loads a configuration file with the same CALLBACKD_* overrides (and the same
// check for misspelt ones) the daemon applies, for offline use: no ARI credentials needed.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.LoadEnvironFor(config.UseOffline, path, os.Environ())
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return cfg, nil
}

// detectorOptions reads the detector settings of the configuration loaded from path.
func detectorOptions(path string, cfg *config.Config) (detect.Options, []string, error) {
	opts, err := daemon.DetectorOptions(cfg)
	if err != nil {
		return detect.Options{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	var monitors []string
	for _, a := range cfg.Asterisk {
		monitors = append(monitors, a.MonitorApp)
	}
	return opts, monitors, nil
}
