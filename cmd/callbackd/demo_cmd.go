package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// demoCall is one scripted customer call: when it starts (simulated time after the daemon is
// connected), what happens, and a sentence for the timeline.
type demoCall struct {
	at    time.Duration
	story string
	// before runs just before the call starts: phones change behaviour over the day.
	before func(*aritest.Server)
	call   aritest.InboundCall
}

// viaOperator is the main number: the operator (1000, not a callback agent) answers and does
// what follows.
func viaOperator(from string, rest ...aritest.Step) []aritest.Step {
	return append([]aritest.Step{
		aritest.NoOp("trunk: " + from + " calls the main number"),
		aritest.Set("__TRANSFER_CONTEXT", "internal"),
		aritest.Dial("PJSIP/1000", 20*time.Second, "t"),
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
		{at: 8 * time.Second, story: "calls Ria (1001) directly; a long conversation (12 minutes)",
			call: aritest.InboundCall{From: "+31201234506", To: "+31205550101", Steps: []aritest.Step{
				aritest.Dial("PJSIP/1001", 10*time.Second, ""),
				aritest.Talk(12 * time.Minute),
			}}},
		{at: 10 * time.Second, story: "reaches Anna's voicemail and hangs up during the greeting",
			call: aritest.InboundCall{From: "+31201234503", To: "+31205550103", Steps: []aritest.Step{
				aritest.VoiceMailHangupInGreeting("1003@default", 2*time.Second),
			}}},
		{at: 15 * time.Second, story: "calls the main number; the operator transfers to Anna; no answer; voicemail",
			call: aritest.InboundCall{From: "+31201234504", Name: "Bakker Installatie", To: main, Steps: viaOperator("+31201234504",
				aritest.BlindTransfer(3*time.Second, "1003", "internal"),
				aritest.Dial("PJSIP/1003", 10*time.Second, ""),
				aritest.VoiceMail("1003@default", 5*time.Second),
			)}},
		{at: 20 * time.Second, story: "calls the main number; the operator transfers to 1004, whose phone is not registered",
			call: aritest.InboundCall{From: "+31201234505", To: main, Steps: viaOperator("+31201234505",
				aritest.BlindTransfer(3*time.Second, "1004", "internal"),
				aritest.Dial("PJSIP/1004", 10*time.Second, ""),
				aritest.Hangup(),
			)}},
		{at: 30 * time.Second, story: "calls Piet (1005) directly, whose phone is not registered",
			call: aritest.InboundCall{From: "+31201234507", Name: "Jansen BV", To: "+31205550105", Steps: []aritest.Step{
				aritest.Dial("PJSIP/1005", 10*time.Second, ""),
				aritest.Hangup(),
			}}},
	}
}

// demoPhones are the phones of the day: agents and the customers' own phones behind the trunk.
func demoPhones(s *aritest.Server) {
	s.SetEndpoint("PJSIP/1000", aritest.Answers(2*time.Second)) // the operator
	s.SetEndpoint("PJSIP/1001", aritest.Answers(2*time.Second)) // Ria
	s.SetEndpoint("PJSIP/1002", aritest.Answers(3*time.Second)) // Bob
	s.SetEndpoint("PJSIP/1003", aritest.Rings())                // Anna is away from her desk
	s.SetEndpoint("PJSIP/1004", aritest.Unavailable())
	s.SetEndpoint("PJSIP/1005", aritest.Unavailable())
	s.SetEndpoint("PJSIP/trunk", aritest.Behavior{Answer: true})
	talks := func(answer, talk time.Duration) aritest.Behavior {
		b := aritest.AnswersAndPresses(answer, "1")
		b.HangupAfter = talk
		return b
	}
	s.SetEndpoint("PJSIP/+31201234501@provider", talks(5*time.Second, 90*time.Second))
	s.SetEndpoint("PJSIP/+31201234502@provider", talks(4*time.Second, 2*time.Minute))
	s.SetEndpoint("PJSIP/+31201234504@provider", talks(6*time.Second, 3*time.Minute))
	s.SetEndpoint("PJSIP/+31201234505@provider", aritest.Busy(4*time.Second)) // always on the phone
	s.SetEndpoint("PJSIP/+31201234507@provider", talks(3*time.Second, time.Minute))
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
	speed := fs.Int("speed", 30, "simulated seconds per wall-clock second")
	serve := fs.Bool("serve", false, "keep the fake PBX and the daemon running after the scripted calls, until Ctrl-C")
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
	if err := playDemo(ctx, demoSettings{listen: *listen, redisAddr: *redisAddr, speed: *speed, serve: *serve, verbose: *verbose}, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "callbackd demo: %v\n", err)
		return 1
	}
	return 0
}

type demoSettings struct {
	listen    string
	redisAddr string
	speed     int
	serve     bool
	verbose   bool
}

func playDemo(ctx context.Context, set demoSettings, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	log := zap.NewNop()
	if set.verbose {
		enc := zap.NewDevelopmentEncoderConfig()
		core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(stderr), zap.InfoLevel)
		log = zap.New(core)
	}

	cfg, err := config.Parse([]byte(demo.ConfigYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	// One simulated clock for the fake PBX and the daemon, driven faster than real time so a
	// morning's calls take seconds. The day starts at 10:00 in the queues' time zone.
	loc, err := cfg.Queues[0].CallingHours.Location()
	if err != nil {
		return err
	}
	now := clock.Real{}.Now().In(loc)
	clk := clock.NewFake(time.Date(now.Year(), now.Month(), now.Day(), 10, 0, 0, 0, loc))
	stopDrive := make(chan struct{})
	driven := make(chan struct{})
	go func() {
		defer close(driven)
		aritest.Drive(clk, time.Duration(set.speed)*time.Millisecond, stopDrive, 24*time.Hour)
	}()
	defer func() { close(stopDrive); <-driven }()

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

	tl := &timeline{w: stdout, clk: clk, start: clk.Now()}
	rec := &demoRecord{}
	up := make(chan struct{}, 1)
	var stopping atomic.Bool
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clk, Logger: log,
		Instance: "demo",
		Listen:   set.listen,
		OnIntake: func(r dialer.IntakeResult) { rec.intake(r); printResult(tl, r) },
		OnProgress: func(p dialer.Progress) {
			rec.progress(p)
			printProgress(tl, cfg, p)
		},
		OnARI: func(name string, isUp bool) {
			if isUp {
				tl.printf("ARI: connected to %s (monitor app %s, control app %s), state resynced", name, cfg.Asterisk[0].MonitorApp, cfg.Asterisk[0].ControlApp)
				select {
				case up <- struct{}{}:
				default:
				}
			} else if !stopping.Load() {
				tl.printf("ARI: connection to %s lost; reconnecting", name)
			}
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "callbackd demo: a fake Asterisk at %s, Redis %s, time running %dx", pbx.URL(), where, set.speed)
	if addr := d.HTTPAddr(); addr != "" {
		fmt.Fprintf(stdout, ", metrics at http://%s/metrics", addr)
	}
	fmt.Fprint(stdout, "\n\n")

	daemonCtx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	ran := make(chan error, 1)
	go func() { ran <- d.Run(daemonCtx) }()
	stop := func() error {
		stopping.Store(true)
		stopDaemon()
		return <-ran
	}

	select {
	case <-up:
	case <-ctx.Done():
		_ = stop()
		return ctx.Err()
	case err := <-ran:
		return err
	case <-time.After(30 * time.Second):
		_ = stop()
		return errors.New("the daemon did not connect to the fake Asterisk within 30 s")
	}

	calls, err := playTraffic(ctx, pbx, clk, tl)
	if err == nil {
		err = waitSettled(ctx, d, calls)
	}
	if err == nil {
		err = waitPromisesDone(ctx, d.Store(), cfg)
	}
	if err != nil {
		_ = stop()
		return err
	}
	fmt.Fprintln(stdout)
	jobs, err := allPromises(ctx, d.Store(), cfg)
	if err != nil {
		_ = stop()
		return err
	}
	fmt.Fprintln(stdout, "Promises in Redis, earliest deadline first:")
	printJobTable(stdout, jobs, clk.Now(), phone.Mask)
	printSummary(stdout, calls, rec, jobs)
	if set.serve {
		fmt.Fprintf(stdout, "\nStill running (--serve): the fake Asterisk is at %s (user %s)", pbx.URL(), cfg.Asterisk[0].Username)
		if addr := d.HTTPAddr(); addr != "" {
			fmt.Fprintf(stdout, ", metrics at http://%s/metrics", addr)
		}
		fmt.Fprintln(stdout, ". Ctrl-C stops.")
		<-ctx.Done()
	}
	return stop()
}

// demoRecord keeps what the demo's summary counts.
type demoRecord struct {
	mu       sync.Mutex
	made     int
	merged   int
	resolved int
	refused  int
	attempts map[string]int // "agent no_answer", "customer busy", ...
}

func (r *demoRecord) intake(ir dialer.IntakeResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case ir.Resolution != nil:
		r.resolved++
	case ir.Err != nil:
		r.refused++
	case ir.Merged:
		r.merged++
	default:
		r.made++
	}
}

func (r *demoRecord) progress(p dialer.Progress) {
	if p.Step != dialer.StepSettled {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.attempts == nil {
		r.attempts = map[string]int{}
	}
	if p.AgentResult != "" {
		r.attempts["agent "+p.AgentResult]++
	}
	if p.CustomerResult != "" {
		r.attempts["customer "+p.CustomerResult]++
	}
}

func printProgress(tl *timeline, cfg *config.Config, p dialer.Progress) {
	who := phone.Mask(p.Job.Number)
	switch p.Step {
	case dialer.StepAgentRung:
		tl.printf("promise %s: ringing agent %s (their phone shows %s)", short(p.Job.ID), p.Agent, who)
	case dialer.StepWhisper:
		// The agent hears the number; the terminal shows it masked like everywhere else.
		whisper := strings.ReplaceAll(p.Detail, strings.TrimPrefix(p.Job.Number, "+"), strings.TrimPrefix(who, "+"))
		tl.printf("promise %s: %s answered; whisper: %s", short(p.Job.ID), p.Agent, whisper)
	case dialer.StepCustomerDialled:
		tl.printf("promise %s: dialling %s with caller id %s; %s hears ringback", short(p.Job.ID), who, cfg.Dialer.CallerID.Number, p.Agent)
	case dialer.StepCustomerAnswered:
		tl.printf("promise %s: %s answered (pressed 1 where asked); bridged with %s", short(p.Job.ID), who, p.Agent)
	case dialer.StepSettled:
		var what string
		switch p.State {
		case queue.StateKept:
			what = "KEPT: connected before the deadline"
		case queue.StateLate:
			what = "LATE: connected after the deadline"
		case queue.StateUnreachable:
			what = fmt.Sprintf("UNREACHABLE after %d attempts", p.Job.Attempts)
		case queue.StatePending:
			what = "back in the queue (" + p.Detail + ")"
			if p.CustomerResult != "" {
				what = fmt.Sprintf("customer %s; attempt %d/%d in %s", strings.ReplaceAll(p.CustomerResult, "_", " "),
					p.Job.Attempts+1, p.Job.MaxAttempts, inMinutes(p.Job.NotBefore.Sub(p.At)))
			}
		default:
			what = string(p.State) + " (" + p.Detail + ")"
		}
		tl.printf("promise %s: %s", short(p.Job.ID), what)
	}
}

// waitPromisesDone waits until no promise is open any more (kept, late, unreachable...).
func waitPromisesDone(ctx context.Context, store *queue.Store, cfg *config.Config) error {
	guard := time.After(2 * time.Minute)
	for {
		open := 0
		for _, q := range cfg.Queues {
			st, err := store.Stats(ctx, q.Name)
			if err != nil {
				return err
			}
			open += int(st.Ready + st.Delayed + st.Leased)
		}
		if open == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-guard:
			return fmt.Errorf("%d promise(s) still open after two minutes", open)
		case <-time.After(50 * time.Millisecond):
		}
	}
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
func waitSettled(ctx context.Context, d *daemon.Daemon, calls int) error {
	guard := time.After(time.Minute)
	last, quiet := d.Backlog().Events, 0
	for quiet < 10 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-guard:
			b := d.Backlog()
			return fmt.Errorf("the daemon did not finish with the %d calls within a minute (%d calls open, %d requests unstored)",
				calls, b.OpenCalls, b.Unstored)
		case <-time.After(20 * time.Millisecond):
		}
		b := d.Backlog()
		if b.Events == last && b.OpenCalls == 0 && b.Unstored == 0 {
			quiet++
		} else {
			quiet = 0
		}
		last = b.Events
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
			r.Request.Reason, r.Request.Target, r.Job.Deadline.In(tl.clk.Now().Location()).Format("15:04"))
	default:
		tl.printf("promise %s MADE: call back %s (%s → %s) in queue %s before %s", short(r.Job.ID), phone.Mask(r.Request.Number),
			r.Request.Reason, r.Request.Target, r.Job.Queue, r.Job.Deadline.In(tl.clk.Now().Location()).Format("15:04"))
	}
}

// short is the tail of a ULID: its random part tells promises apart at a glance.
func short(id string) string {
	if len(id) > 6 {
		return "…" + id[len(id)-6:]
	}
	return id
}

func allPromises(ctx context.Context, store *queue.Store, cfg *config.Config) ([]queue.Job, error) {
	var jobs []queue.Job
	for _, q := range cfg.Queues {
		list, err := store.List(ctx, q.Name, queue.ListOptions{})
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, list...)
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Deadline.Before(jobs[j].Deadline) })
	return jobs, nil
}

// inMinutes prints a duration as "1h59m" or "45m".
func inMinutes(d time.Duration) string {
	d = d.Round(time.Minute)
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dm", int(d.Minutes()))
}

func printSummary(w io.Writer, calls int, rec *demoRecord, jobs []queue.Job) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	count := map[queue.State]int{}
	var waits []time.Duration
	for _, j := range jobs {
		count[j.State]++
		if !j.ConnectedAt.IsZero() {
			waits = append(waits, j.ConnectedAt.Sub(j.Created))
		}
	}
	fmt.Fprintf(w, "\n%d customer calls: %d promises made, %d repeat request(s) merged, %d resolved by the customer, %d refused.\n",
		calls, rec.made, rec.merged, rec.resolved, rec.refused)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPROMISES\tKEPT\tLATE\tUNREACHABLE\tKEPT RATIO\tMEDIAN TIME TO CALLBACK")
	ratio := dialer.KeptRatio(map[queue.State]int64{queue.StateKept: int64(count[queue.StateKept]),
		queue.StateLate: int64(count[queue.StateLate]), queue.StateUnreachable: int64(count[queue.StateUnreachable]),
		queue.StateExpired: int64(count[queue.StateExpired])})
	ratioText := "-"
	if ratio == ratio { // not NaN
		ratioText = fmt.Sprintf("%.0f %%", ratio*100)
	}
	median := "-"
	if len(waits) > 0 {
		sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
		median = waits[len(waits)/2].Round(time.Second).String()
	}
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\n", len(jobs), count[queue.StateKept], count[queue.StateLate],
		count[queue.StateUnreachable], ratioText, median)
	_ = tw.Flush()
	var keys []string
	for k := range rec.attempts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, rec.attempts[k]))
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "\nCall attempts: %s.\n", strings.Join(parts, ", "))
	}
}
