package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// demoConfig is the configuration the demo daemon runs with; the Asterisk URL is filled in
// with the fake's address. It is an ordinary config file: `config check` accepts it.
const demoConfig = `
asterisk:
  - name: fake-pbx
    url: http://127.0.0.1:1/ari
    username: callbackd
    password: callbackd-secret
detector:
  default_queue: reception
queues:
  - name: reception
    deadline: {voicemail: 4h, unanswered_transfer: 2h}
  - name: support
    deadline: {voicemail: 2h, unanswered_transfer: 1h}
agents:
  - {id: ria, name: Ria (reception), endpoint: PJSIP/1001, extension: "1001", queues: [reception]}
  - {id: anna, name: Anna (support), endpoint: PJSIP/1003, extension: "1003", queues: [support]}
dialer:
  customer_dial_template: PJSIP/{number}@provider
  caller_id: {number: "+31205550100", name: Acme}
`

// demoCall is one scripted customer call: when it starts (simulated time after the daemon is
// connected), what happens, and a sentence for the timeline.
type demoCall struct {
	at    time.Duration
	story string
	// before runs just before the call starts: phones change behaviour over the day.
	before func(*aritest.Server)
	call   aritest.InboundCall
}

// viaReception is the main number: Ria (1001) answers and does what follows.
func viaReception(from string, rest ...aritest.Step) []aritest.Step {
	return append([]aritest.Step{
		aritest.NoOp("trunk: " + from + " calls the main number"),
		aritest.Set("__TRANSFER_CONTEXT", "internal"),
		aritest.Dial("PJSIP/1001", 20*time.Second, "t"),
	}, rest...)
}

func demoTraffic() []demoCall {
	const main = "+31205550100"
	return []demoCall{
		{at: 0, story: "calls Anna (1003) directly; nobody answers; hangs up",
			call: aritest.InboundCall{From: "+31201234501", To: "+31205550103", Steps: []aritest.Step{
				aritest.Dial("PJSIP/1003", 10*time.Second, ""),
				aritest.Playback("vm-nobodyavail"),
				aritest.CallerHangsUp(3 * time.Second),
			}}},
		{at: 5 * time.Second, story: "calls Anna directly; no answer; leaves a voicemail",
			call: aritest.InboundCall{From: "+31201234502", Name: "J. de Vries", To: "+31205550103", Steps: []aritest.Step{
				aritest.Dial("PJSIP/1003", 10*time.Second, ""),
				aritest.VoiceMail("1003@default", 6*time.Second),
			}}},
		{at: 10 * time.Second, story: "reaches Anna's voicemail and hangs up during the greeting",
			call: aritest.InboundCall{From: "+31201234503", To: "+31205550103", Steps: []aritest.Step{
				aritest.VoiceMailHangupInGreeting("1003@default", 2*time.Second),
			}}},
		{at: 15 * time.Second, story: "calls the main number; Ria transfers to Anna; no answer; voicemail",
			call: aritest.InboundCall{From: "+31201234504", Name: "Bakker Installatie", To: main, Steps: viaReception("+31201234504",
				aritest.BlindTransfer(3*time.Second, "1003", "internal"),
				aritest.Dial("PJSIP/1003", 10*time.Second, ""),
				aritest.VoiceMail("1003@default", 5*time.Second),
			)}},
		{at: 20 * time.Second, story: "calls the main number; Ria transfers to 1004, whose phone is not registered",
			call: aritest.InboundCall{From: "+31201234505", To: main, Steps: viaReception("+31201234505",
				aritest.BlindTransfer(3*time.Second, "1004", "internal"),
				aritest.Dial("PJSIP/1004", 10*time.Second, ""),
				aritest.Hangup(),
			)}},
		{at: 25 * time.Second, story: "calls the main number; Ria answers and helps",
			call: aritest.InboundCall{From: "+31201234506", To: main, Steps: viaReception("+31201234506",
				aritest.Talk(8*time.Second),
			)}},
		{at: 70 * time.Second, story: "calls Anna again, who is back at her desk and answers",
			before: func(s *aritest.Server) { s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second)) },
			call: aritest.InboundCall{From: "+31201234502", Name: "J. de Vries", To: "+31205550103", Steps: []aritest.Step{
				aritest.Dial("PJSIP/1003", 10*time.Second, ""),
				aritest.Talk(10 * time.Second),
			}}},
		{at: 75 * time.Second, story: "tries again; transferred to 1004 again, still not registered",
			call: aritest.InboundCall{From: "+31201234505", To: main, Steps: viaReception("+31201234505",
				aritest.BlindTransfer(2*time.Second, "1004", "internal"),
				aritest.Dial("PJSIP/1004", 10*time.Second, ""),
				aritest.Hangup(),
			)}},
	}
}

// demoPhones are the internal phones at the start of the day.
func demoPhones(s *aritest.Server) {
	s.SetEndpoint("PJSIP/1001", aritest.Answers(2*time.Second))
	s.SetEndpoint("PJSIP/1003", aritest.Rings())
	s.SetEndpoint("PJSIP/1004", aritest.Unavailable())
	s.SetEndpoint("PJSIP/trunk", aritest.Behavior{Answer: true})
}

// timeline prints demo lines stamped with simulated time since the start.
type timeline struct {
	mu    sync.Mutex
	w     io.Writer
	clk   clock.Clock
	start time.Time
}

func (t *timeline) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.clk.Now().Sub(t.start).Round(time.Second)
	fmt.Fprintf(t.w, "[%02d:%02d] %s\n", int(d.Minutes()), int(d.Seconds())%60, fmt.Sprintf(format, args...))
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisAddr := fs.String("redis", "", "use the Redis at `host:port` instead of an embedded one (keys under callbackd-demo)")
	speed := fs.Int("speed", 20, "simulated seconds per wall-clock second")
	serve := fs.Bool("serve", false, "keep the fake PBX and the daemon running after the scripted calls, until Ctrl-C")
	verbose := fs.Bool("v", false, "also print the daemon's own log (console format) on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callbackd demo [--redis host:port] [--speed N] [--serve] [-v]")
		fmt.Fprintln(stderr, "\nRuns a fake Asterisk with scripted customer calls and the callbackd pipeline against it")
		fmt.Fprintln(stderr, "(ARI over HTTP/WebSocket, detector, promise store in Redis), and prints what it did.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *speed < 1 || *speed > 1000 {
		fmt.Fprintln(stderr, "callbackd demo: --speed must be 1…1000 and no arguments are taken")
		fs.Usage()
		return 2
	}
	if err := demo(ctx, demoSettings{redisAddr: *redisAddr, speed: *speed, serve: *serve, verbose: *verbose}, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "callbackd demo: %v\n", err)
		return 1
	}
	return 0
}

type demoSettings struct {
	redisAddr string
	speed     int
	serve     bool
	verbose   bool
}

func demo(ctx context.Context, set demoSettings, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	log := zap.NewNop()
	if set.verbose {
		enc := zap.NewDevelopmentEncoderConfig()
		core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(stderr), zap.InfoLevel)
		log = zap.New(core)
	}

	// One simulated clock for the fake PBX and the daemon, driven faster than real time so a
	// morning's calls take seconds.
	clk := clock.NewFake(clock.Real{}.Now().Truncate(time.Second))
	stopDrive := make(chan struct{})
	driven := make(chan struct{})
	go func() {
		defer close(driven)
		aritest.Drive(clk, time.Duration(set.speed)*time.Millisecond, stopDrive, 24*time.Hour)
	}()
	defer func() { close(stopDrive); <-driven }()

	cfg, err := config.Parse([]byte(demoConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}

	pbx, err := aritest.New(aritest.Options{Clock: clk, Username: cfg.Asterisk[0].Username, Password: cfg.Asterisk[0].Password.Reveal()})
	if err != nil {
		return fmt.Errorf("starting the fake Asterisk: %w", err)
	}
	defer pbx.Close()
	demoPhones(pbx)
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")

	rdb, where, closeRedis, err := demoRedis(set.redisAddr, cfg)
	if err != nil {
		return err
	}
	defer closeRedis()
	store, err := storeFor(cfg, rdb, clk)
	if err != nil {
		return err
	}
	if err := store.Load(ctx); err != nil {
		return fmt.Errorf("loading the queue scripts into Redis at %s: %w", where, err)
	}

	tl := &timeline{w: stdout, clk: clk, start: clk.Now()}
	fmt.Fprintf(stdout, "callbackd demo: a fake Asterisk at %s, Redis %s, time running %dx\n\n", pbx.URL(), where, set.speed)

	var mu sync.Mutex
	var settled []dialer.IntakeResult
	intake, err := dialer.NewIntake(dialer.IntakeOptions{Config: cfg, Store: store, Clock: clk, Logger: log,
		OnResult: func(r dialer.IntakeResult) {
			mu.Lock()
			settled = append(settled, r)
			mu.Unlock()
			printResult(tl, r)
		}})
	if err != nil {
		return err
	}
	dopts, err := detectorFor(cfg)
	if err != nil {
		return err
	}
	dopts.Sink, dopts.Clock, dopts.Logger = intake, clk, log
	det := detect.New(dopts)

	up := make(chan struct{}, 1)
	conns, err := connectionsFor(cfg, clk, log, nil, func(name string, isUp bool) {
		if isUp {
			tl.printf("ARI: connected to %s (monitor app %s, control app %s), state resynced", name, cfg.Asterisk[0].MonitorApp, cfg.Asterisk[0].ControlApp)
			select {
			case up <- struct{}{}:
			default:
			}
		} else if ctx.Err() == nil {
			tl.printf("ARI: connection to %s lost; reconnecting", name)
		}
	})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = conns.Run(ctx, det, nil) }()
	go func() { defer wg.Done(); _ = intake.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	select {
	case <-up:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("the daemon did not connect to the fake Asterisk within 30 s")
	}

	calls, err := playTraffic(ctx, pbx, clk, tl)
	if err != nil {
		return err
	}
	if err := waitSettled(ctx, det, intake, calls); err != nil {
		return err
	}
	mu.Lock()
	results := append([]dialer.IntakeResult(nil), settled...)
	mu.Unlock()
	fmt.Fprintln(stdout)
	if err := printPromises(ctx, stdout, store, cfg, clk.Now()); err != nil {
		return err
	}
	printSummary(stdout, calls, results)
	if set.serve {
		fmt.Fprintf(stdout, "\nStill running (--serve): the fake Asterisk is at %s (user %s). Ctrl-C stops.\n", pbx.URL(), cfg.Asterisk[0].Username)
		<-ctx.Done()
	}
	return nil
}

// demoRedis returns the demo's Redis: the one at addr, or an embedded one.
func demoRedis(addr string, cfg *config.Config) (redis.UniversalClient, string, func(), error) {
	if addr != "" {
		// Keys go under their own prefix so the demo never touches a real deployment's queues.
		cfg.Redis.KeyPrefix = "callbackd-demo"
		rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 5 * time.Second})
		return rdb, addr + " (keys under callbackd-demo)", func() { _ = rdb.Close() }, nil
	}
	mr, err := miniredis.Run()
	if err != nil {
		return nil, "", nil, fmt.Errorf("starting the embedded Redis: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return rdb, "embedded (in memory, " + mr.Addr() + ")", func() { _ = rdb.Close(); mr.Close() }, nil
}

// playTraffic starts every scripted call at its time and returns once all have ended.
func playTraffic(ctx context.Context, pbx *aritest.Server, clk clock.Clock, tl *timeline) (int, error) {
	traffic := demoTraffic()
	start := clk.Now()
	var running []*aritest.Call
	for _, c := range traffic {
		if wait := c.at - clk.Now().Sub(start); wait > 0 {
			select {
			case <-clk.After(wait):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		if c.before != nil {
			c.before(pbx)
		}
		tl.printf("call: %s %s", phone.Mask(c.call.From), c.story)
		running = append(running, pbx.Inbound(c.call))
	}
	for _, call := range running {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := call.Wait(wctx)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("a scripted call did not end: %w", err)
		}
	}
	return len(traffic), nil
}

// waitSettled waits until the detector has closed every call and the intake has stored every
// request: nothing tracked, nothing pending, and no event arriving for a moment.
func waitSettled(ctx context.Context, det *detect.Detector, intake *dialer.Intake, calls int) error {
	guard := time.After(time.Minute)
	last, quiet := det.Stats().Events, 0
	for quiet < 10 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-guard:
			return fmt.Errorf("the daemon did not finish with the %d calls within a minute (%d calls open, %d requests unstored)",
				calls, det.Tracked(), intake.Pending())
		case <-time.After(20 * time.Millisecond):
		}
		n := det.Stats().Events
		if n == last && det.Tracked() == 0 && intake.Pending() == 0 {
			quiet++
		} else {
			quiet = 0
		}
		last = n
	}
	return nil
}

func printResult(tl *timeline, r dialer.IntakeResult) {
	switch {
	case r.Resolution != nil:
		tl.printf("promise %s RESOLVED: %s reached %s themselves; no callback needed", short(r.Job.ID), phone.Mask(r.Resolution.Number), r.Resolution.Target)
	case r.Err != nil:
		tl.printf("request REFUSED for %s (%s → %s): %v", phone.Mask(r.Request.Number), r.Request.Reason, r.Request.Target, r.Err)
	case r.Merged:
		tl.printf("promise %s MERGED: %s %s → %s again; still one promise, due %s", short(r.Job.ID), phone.Mask(r.Request.Number),
			r.Request.Reason, r.Request.Target, r.Job.Deadline.Local().Format("15:04"))
	default:
		tl.printf("promise %s MADE: call back %s (%s → %s) in queue %s before %s", short(r.Job.ID), phone.Mask(r.Request.Number),
			r.Request.Reason, r.Request.Target, r.Job.Queue, r.Job.Deadline.Local().Format("15:04"))
	}
}

// short is the tail of a ULID: its random part tells promises apart at a glance.
func short(id string) string {
	if len(id) > 6 {
		return "…" + id[len(id)-6:]
	}
	return id
}

func printPromises(ctx context.Context, w io.Writer, store *queue.Store, cfg *config.Config, now time.Time) error {
	var jobs []queue.Job
	for _, q := range cfg.Queues {
		list, err := store.List(ctx, q.Name, queue.ListOptions{})
		if err != nil {
			return err
		}
		jobs = append(jobs, list...)
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Deadline.Before(jobs[j].Deadline) })
	fmt.Fprintln(w, "Promises in Redis, earliest deadline first:")
	printJobTable(w, jobs, now, phone.Mask)
	return nil
}

// inMinutes prints a duration as "1h59m" or "45m".
func inMinutes(d time.Duration) string {
	d = d.Round(time.Minute)
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dm", int(d.Minutes()))
}

func printSummary(w io.Writer, calls int, results []dialer.IntakeResult) {
	var made, merged, resolved, refused int
	for _, r := range results {
		switch {
		case r.Resolution != nil:
			resolved++
		case r.Err != nil:
			refused++
		case r.Merged:
			merged++
		default:
			made++
		}
	}
	fmt.Fprintf(w, "\n%d customer calls: %d promises made, %d repeat request(s) merged, %d resolved by the customer reaching the target, %d refused.\n",
		calls, made, merged, resolved, refused)
	fmt.Fprintln(w, "Next milestone (the dialer): ring a free agent before each deadline, whisper who and why, call the customer, count kept/late.")
}
