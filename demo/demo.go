package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
	"github.com/callbackd/callbackd/queue/promisetable"
)

// Settings say how the demo runs.
type Settings struct {
	// RedisAddr is a Redis (host:port) to use instead of an embedded one; the demo's keys go
	// under callbackd-demo there.
	RedisAddr string
	// Speed is how many simulated seconds pass per wall-clock second (1…1000).
	Speed int
	// Listen is where the daemon serves /metrics, /healthz and /readyz ("-": nowhere).
	Listen string
	// Serve keeps the fake PBX and the daemon running after the scripted calls until ctx ends.
	Serve bool
	// Log, when set, gets the daemon's own log in console format.
	Log io.Writer
	// Token is the served demo's bearer token (page, API, /metrics); empty: one made up for
	// the run.
	Token string
}

// Run plays the demo and writes its timeline, the promises left in Redis and a summary to
// stdout. It returns once every promise is finished (with Serve, once ctx ends) and the
// daemon has stopped.
func Run(ctx context.Context, set Settings, stdout io.Writer) error {
	if set.Speed < 1 || set.Speed > 1000 {
		return fmt.Errorf("speed %d: the demo runs 1…1000 times faster than real time", set.Speed)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	log := zap.NewNop()
	if set.Log != nil {
		enc := zap.NewDevelopmentEncoderConfig()
		core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(set.Log), zap.InfoLevel)
		log = zap.New(core)
	}

	cfg, err := config.Parse([]byte(ConfigYAML), func(string) (string, bool) { return "", false })
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
		aritest.Drive(clk, time.Duration(set.Speed)*time.Millisecond, stopDrive, 24*time.Hour)
	}()
	defer func() { close(stopDrive); <-driven }()

	pbx, err := aritest.New(aritest.Options{Clock: clk, Username: cfg.Asterisk[0].Username, Password: cfg.Asterisk[0].Password.Reveal()})
	if err != nil {
		return fmt.Errorf("starting the fake Asterisk: %w", err)
	}
	defer pbx.Close()
	phones(pbx)
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	// Served, the demo is watched in a browser: the supervisor page wants a token, and one made
	// up for this run keeps others on the machine out of it.
	var token string
	if set.Serve {
		token = set.Token
		if token == "" {
			if token, err = newToken(); err != nil {
				return err
			}
		}
		cfg.HTTP.Token = config.Secret(token)
	}

	rdb, where, closeRedis, err := redisFor(set.RedisAddr, cfg)
	if err != nil {
		return err
	}
	defer closeRedis()

	// The CRM's handlers and the daemon's callbacks print from their own goroutines.
	stdout = &lockedWriter{w: stdout}
	tl := &timeline{w: stdout, clk: clk, start: clk.Now()}
	crm, err := startCRM(cfg, clk, tl)
	if err != nil {
		return err
	}
	defer crm.close()
	rec := &tally{}
	up := make(chan struct{}, 1)
	var stopping atomic.Bool
	// The forecaster exists once the daemon is built; the intake reports only once it runs.
	var forecaster *dialer.Forecaster
	var promises *queue.Store
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clk, Logger: log,
		Instance: "demo",
		Listen:   set.Listen,
		OnIntake: func(r dialer.IntakeResult) {
			rec.intake(r)
			printResult(tl, r)
			if p, ok := predict(ctx, forecaster, promises, tl, r); ok {
				rec.predicted(r.Job.ID, !p.AtRisk())
				printPrediction(tl, r, p)
			}
		},
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
	forecaster, promises = d.Forecaster(), d.Store()
	fmt.Fprintf(stdout, "callbackd demo: a fake Asterisk at %s, Redis %s, time running %dx", pbx.URL(), where, set.Speed)
	if addr := d.HTTPAddr(); addr != "" {
		fmt.Fprintf(stdout, ", metrics at http://%s/metrics", addr)
		if token != "" {
			fmt.Fprintf(stdout, "\nThe supervisor page: http://%s/?token=%s (token %s, also the API's bearer token)", addr, token, token)
		}
	}
	fmt.Fprintf(stdout, "\nA CRM receiving the signed webhooks of finished promises at %s", crm.url())
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
	jobs, err := allPromises(ctx, d.Store(), cfg)
	if err == nil {
		var outcomes []string
		for _, j := range jobs {
			if slices.Contains(demoWebhookEvents(), string(j.State)) {
				outcomes = append(outcomes, j.ID)
			}
		}
		err = crm.waitFor(ctx, outcomes, 30*time.Second)
	}
	if err != nil {
		_ = stop()
		return err
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "Promises in Redis, earliest deadline first:")
	promisetable.Print(stdout, jobs, clk.Now(), phone.Mask)
	printSummary(stdout, calls, rec, jobs)
	kept := 0
	for _, j := range jobs {
		if j.State == queue.StateKept {
			kept++
		}
	}
	fmt.Fprintln(stdout)
	printForecastScore(stdout, rec, kept)
	if set.Serve {
		fmt.Fprintf(stdout, "\nStill running (--serve): the fake Asterisk is at %s (user %s)", pbx.URL(), cfg.Asterisk[0].Username)
		if addr := d.HTTPAddr(); addr != "" {
			fmt.Fprintf(stdout, ", metrics at http://%s/metrics, the supervisor page at http://%s/?token=%s", addr, addr, token)
		}
		fmt.Fprintln(stdout, ". Ctrl-C stops.")
		<-ctx.Done()
	}
	return stop()
}

// newToken is a token for one served demo.
func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making the demo's token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// redisFor returns the demo's Redis: the one at addr, or an embedded one.
func redisFor(addr string, cfg *config.Config) (redis.UniversalClient, string, func(), error) {
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

// allPromises is every promise of the demo's queues, earliest deadline first.
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
