// Package daemon is callbackd's composition root: it builds the whole daemon from a
// validated Config — ARI connections → detector → intake → promise store ← dispatcher →
// agents and customers — and runs it, HTTP server and shutdown order included. `callbackd
// run`, the demo and the tests build the same daemon; only the config, the clock and the hooks
// differ.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/api"
	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/buildinfo"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
	"github.com/callbackd/callbackd/web"
	"github.com/callbackd/callbackd/webhook"
)

// Options is what a daemon is built from. Config and Redis are required.
type Options struct {
	// Config must have passed validation (config.Load or config.Parse).
	Config *config.Config
	Redis  redis.UniversalClient
	// Clock is the real clock when nil; the demo and tests pass a simulated one.
	Clock  clock.Clock
	Logger *zap.Logger
	// Instance tells daemons sharing one Redis apart in leases and reservations; "" makes
	// one from the host name and the process id.
	Instance string
	// Listen overrides Config.HTTP.Listen ("" keeps it; "-" serves nothing).
	Listen string
	// Build labels callbackd_build_info; the zero value reads the binary's build information.
	Build buildinfo.Info
	// ARIClient carries the ARI connections' REST requests and WebSocket handshakes; nil: a
	// fresh client per connection. (Tests kill a daemon through it.)
	ARIClient *http.Client

	// The hooks let the demo and tests watch the daemon; each may be nil.
	OnIntake   func(dialer.IntakeResult)
	OnProgress func(dialer.Progress)
	OnARI      func(asterisk string, up bool)
}

// Daemon is callbackd's main job wired together, ready to Run.
type Daemon struct {
	cfg   *config.Config
	log   *zap.Logger
	rdb   redis.UniversalClient
	dials *dialWatch
	store *queue.Store

	conns      *ari.Manager
	detector   *detect.Detector
	calls      *queue.CallMemory
	keeper     *callKeeper // the detector's sink and memory: a call stays kept until its requests are stored
	intake     *dialer.Intake
	forecaster *dialer.Forecaster
	riskWatch  *dialer.RiskWatch
	webhooks   *webhook.Deliverer
	pool       *dialer.Pool
	control    *dialer.Control
	janitor    *dialer.Janitor
	dispatcher *dialer.Dispatcher

	handler  http.Handler
	listener net.Listener
	stopping atomic.Bool

	mu       sync.Mutex
	warnings []string // found at start: Redis may lose promises
}

// New builds the daemon and opens its HTTP listener; nothing runs until Run.
func New(o Options) (*Daemon, error) {
	cfg, rdb, clk, log := o.Config, o.Redis, o.Clock, o.Logger
	if cfg == nil || rdb == nil {
		return nil, errors.New("building the daemon: a config and a Redis client are required")
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	d := &Daemon{cfg: cfg, log: log, rdb: rdb, dials: &dialWatch{}, control: dialer.NewControl()}
	rdb.AddHook(d.dials)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg, o.Build)
	var err error
	// A broken record is moved aside by the script that met it, once; saying so here is the
	// one log line an operator gets about it.
	quarantined := func(q queue.Quarantined) {
		log.Error("promise quarantined: its record in Redis is broken; the queue goes on without it",
			zap.String("queue", q.Queue), zap.String("promise", q.ID), zap.String("reason", q.Reason))
	}
	replication := newReplicationWatch(reg, log.Named("redis"))
	if d.store, err = newStore(cfg, rdb, clk, quarantined, replication.unreplicated); err != nil {
		return nil, err
	}
	policy := dialer.PolicyFrom(cfg)
	metrics := dialer.NewMetrics(reg, policy.QueueNames())
	mask := phone.Mask
	if !cfg.Log.MaskNumbers {
		mask = func(n string) string { return n }
	}
	// The stable id names this daemon's Stasis applications; the worker name in leases and
	// reservations stays unique per process, so a second process with the same id (a
	// misconfiguration) never takes the first one's live claims for its own dead ones.
	instanceID := InstanceID(cfg, os.Hostname)
	instance := o.Instance
	if instance == "" {
		instance = instanceName(instanceID)
	}

	if d.webhooks, err = newWebhooks(cfg, rdb, d.store, instance, clk, log.Named("webhook"), reg); err != nil {
		return nil, err
	}
	limiter := queue.NewRateLimits(rdb, cfg.Redis.KeyPrefix)
	d.pool = dialer.NewPool(policy.Agents, clk, log.Named("agents"))
	d.pool.UsePresence(queue.NewPresences(rdb, cfg.Redis.KeyPrefix, clk))
	d.pool.UseHolds(queue.NewAgentHolds(rdb, cfg.Redis.KeyPrefix, clk))

	ariMetrics := ari.NewMetrics(reg)
	d.conns, err = connectionsFor(cfg, clk, log.Named("ari"), ariMetrics, func(name string, up bool) {
		if !up {
			for _, c := range d.conns.Conns() {
				if c.Name() == name {
					d.pool.Disconnected(c.AsteriskID())
				}
			}
		}
		if up && d.dispatcher != nil {
			// Agents held back while this Asterisk was down or its app taken over may be rung.
			d.dispatcher.Wake()
		}
		if o.OnARI != nil {
			o.OnARI(name, up)
		}
	}, instanceApps(instanceID), func(ao *ari.Options) {
		if o.ARIClient != nil {
			ao.HTTPClient = o.ARIClient
		}
	})
	if err != nil {
		return nil, err
	}
	var controlApps []string
	for _, c := range d.conns.Conns() {
		controlApps = append(controlApps, c.ControlApp())
		log.Info("Stasis applications of this daemon", zap.String("asterisk", c.Name()), zap.String("instance_id", instanceID),
			zap.String("monitor_app", c.MonitorApp()), zap.String("control_app", c.ControlApp()))
	}
	d.dispatcher, err = dialer.NewDispatcher(dialer.DispatcherOptions{
		Policy: policy, Store: d.store, Reservations: queue.NewReservations(rdb, cfg.Redis.KeyPrefix),
		Pool: d.pool, Control: d.control, PBXs: pbxDirectory{cfg: cfg, conns: d.conns},
		Metrics: metrics, Clock: clk, Logger: log.Named("dialer"), Instance: instance, Mask: mask,
		Wakeups: d.store.Wakeups, Limiter: limiter,
		OnProgress: o.OnProgress, Claimable: d.claimable,
	})
	if err != nil {
		return nil, err
	}
	d.janitor, err = dialer.NewJanitor(dialer.JanitorOptions{Promises: d.store, Queues: policy.QueueNames(),
		Instance: instance, Control: d.control, ControlApps: controlApps, Clock: clk, Logger: log.Named("janitor"),
		Lease: policy.Calls.Lease, ConfirmDigit: policy.ConfirmDigit,
		PBX: func(id string) (dialer.JanitorREST, bool) {
			c, ok := d.conns.Client(id)
			return c, ok
		}})
	if err != nil {
		return nil, err
	}
	forecaster := dialer.NewForecaster(policy, d.store, d.pool, d.dispatcher.HandleTimeFor)
	d.forecaster = forecaster
	d.riskWatch = dialer.NewRiskWatch(dialer.RiskWatchOptions{Forecaster: forecaster, Store: d.store,
		Queues: policy.QueueNames(), Clock: clk, Logger: log.Named("risk")})
	d.intake, err = dialer.NewIntake(dialer.IntakeOptions{Policy: policy, Store: d.store, Metrics: metrics,
		Asked: queue.NewAsked(rdb, cfg.Redis.KeyPrefix),
		Clock: clk, Logger: log.Named("intake"), Mask: mask, Quote: forecaster.Quote, Limiter: limiter,
		OnResult: func(r dialer.IntakeResult) {
			d.keeper.settled(r.Request)
			d.dispatcher.Wake()
			if o.OnIntake != nil {
				o.OnIntake(r)
			}
		}})
	if err != nil {
		return nil, err
	}
	dopts, err := DetectorOptions(cfg)
	if err != nil {
		return nil, err
	}
	d.calls = newCallMemory(cfg, rdb, clk, log.Named("detector"))
	d.keeper = newCallKeeper(d.intake, d.calls)
	dopts.Sink, dopts.Clock, dopts.Logger, dopts.Mask, dopts.Memory = d.keeper, clk, log.Named("detector"), mask, d.keeper
	dopts.ControlApps = append(dopts.ControlApps, controlApps...)
	d.detector = detect.New(dopts)
	metrics.RegisterStateCollector(reg, policy, d.store, d.pool, d.dispatcher.HandleTimeFor, log.Named("metrics"))

	admin, err := dialer.NewAdmin(dialer.AdminOptions{Intake: d.intake, Store: d.store, Forecaster: forecaster,
		Idempotency: queue.NewIdempotency(rdb, cfg.Redis.KeyPrefix), Clock: clk, Logger: log.Named("admin")})
	if err != nil {
		return nil, err
	}
	tokens := apiTokens(cfg.HTTP.Tokens)
	page, err := web.New(web.Options{Promises: pagePromises{Store: d.store, admin: admin}, Forecast: forecaster, Agents: d.pool, Events: d.store,
		Authorize: pageAccess(api.ConfiguredTokens(cfg.HTTP.Token.Reveal(), tokens)), Mask: phone.Mask,
		KeptWindow: policy.KeptRatioWindow, Clock: clk, Logger: log.Named("web")})
	if err != nil {
		return nil, err
	}
	d.handler = withPage(api.New(api.Options{Token: cfg.HTTP.Token.Reveal(), Tokens: tokens, Gatherer: reg, Registerer: reg,
		Ready: d.problems, Warnings: d.startWarnings, Agents: d.pool, Admin: admin, Events: d.store, Clock: clk, Logger: log}), page)
	listen := cfg.HTTP.Listen
	if o.Listen != "" {
		listen = o.Listen
	}
	if listen != "-" {
		if d.listener, err = net.Listen("tcp", listen); err != nil {
			return nil, fmt.Errorf("http.listen %s: %w", listen, err)
		}
	}
	return d, nil
}

// instanceName tells daemons sharing one Redis apart in leases and reservations: the
// instance id (or the host name) with the process id and a random part, unique per process.
func instanceName(instanceID string) string {
	host := instanceID
	if host == "" {
		var err error
		if host, err = os.Hostname(); err != nil || host == "" {
			host = "callbackd"
		}
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// claimable: promises are claimed for an Asterisk's agents only while its connection is up,
// resynced and holds both applications (ari.Conn.Connected turns false on ApplicationReplaced).
func (d *Daemon) claimable(asteriskID string) bool {
	for _, c := range d.conns.Conns() {
		if c.AsteriskID() == asteriskID {
			return c.Connected()
		}
	}
	return false
}

// HTTPAddr is where the HTTP surface is served ("" when not served).
func (d *Daemon) HTTPAddr() string {
	if d.listener == nil {
		return ""
	}
	return d.listener.Addr().String()
}

// Handler is the HTTP surface Run serves, for serving it elsewhere (tests, with Listen "-").
func (d *Daemon) Handler() http.Handler { return d.handler }

// Store is the promise store the daemon keeps its promises in.
func (d *Daemon) Store() *queue.Store { return d.store }

// Adopted is how many conversations a dead daemon's callbacks left that this one watches to
// their end.
func (d *Daemon) Adopted() int { return d.janitor.Adopted() }

// Forecaster is the daemon's forecast of its queues (the demo prints its predictions).
func (d *Daemon) Forecaster() *dialer.Forecaster { return d.forecaster }

// Backlog is what the daemon has seen of calls but not yet turned into stored promises.
type Backlog struct {
	Events    uint64 // ARI events the detector has handled since New
	OpenCalls int    // calls the detector follows that have not ended
	Unstored  int    // callback requests waiting for the promise store
}

// Backlog tells when the daemon has caught up with the calls so far.
func (d *Daemon) Backlog() Backlog {
	return Backlog{Events: d.detector.Stats().Events, OpenCalls: d.detector.Tracked(), Unstored: d.intake.Pending()}
}

// Run runs the daemon until ctx ends, then shuts down in order: stop claiming, let calls
// finish (dialer.shutdown_grace), hand back what is left, and only then close ARI, so hang-ups
// and their events still flow during the grace period.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.store.Load(ctx); err != nil {
		if d.listener != nil {
			_ = d.listener.Close()
		}
		if ctx.Err() != nil {
			// Stopped (SIGTERM) while still waiting for Redis: a stop, not a failure.
			d.log.Info("stopped before Redis answered at start", zap.Error(err))
			return nil
		}
		return fmt.Errorf("starting: %w", err)
	}
	if on, why := d.store.Functions(); !on {
		d.log.Info("redis: the queue scripts run as scripts (EVALSHA), not as a function library", zap.Error(why))
	}
	d.checkDurability(ctx)
	// A new endpoint's groups start at the end of the streams: made before anything runs, no
	// event of this start is missed. The deliverer retries what fails here on its own.
	if err := d.webhooks.Prepare(ctx); err != nil {
		d.log.Warn("webhooks: could not create the consumer groups yet", zap.Error(err))
	}
	// Before the first resync: it ends the restored calls that ended while no daemon listened.
	restoreCalls(ctx, d.calls, d.detector, d.log.Named("detector"))
	// Before dispatching: a restart must not ring an agent still in wrap-up or cooldown.
	if err := d.pool.LoadHolds(ctx); err != nil {
		d.log.Warn("reading agents' wrap-up and cooldown failed; agents held back by another daemon may be rung",
			zap.Error(err))
	}
	infra, stopInfra := context.WithCancel(context.WithoutCancel(ctx))
	defer stopInfra()
	var wg sync.WaitGroup
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(infra); err != nil && infra.Err() == nil {
				d.log.Error(name+" stopped", zap.Error(err))
			}
		}()
	}
	monitor := ari.Handlers{d.detector, d.pool, d.janitor.Monitor()}
	run("ARI connections", func(c context.Context) error { return d.conns.Run(c, monitor, ari.Handlers{d.control, d.janitor}) })
	run("detector call memory", d.calls.Run)
	run("janitor", d.janitor.Run)
	run("intake", d.intake.Run)
	run("agent pool", func(c context.Context) error { return d.pool.Run(c, pbxDirectory{cfg: d.cfg, conns: d.conns}) })
	run("agent presence", d.pool.FollowPresence)
	run("at-risk watch", d.riskWatch.Run)
	run("webhooks", d.webhooks.Run)
	run("agent holds", d.pool.FollowHolds)
	var srv *http.Server
	if d.listener != nil {
		// The event streams last as long as their clients; Shutdown would wait for them in vain
		// and leave them open, so they end as it begins (the clients resume elsewhere).
		streams, endStreams := context.WithCancel(context.Background())
		defer endStreams()
		srv = newHTTPServer(endingStreams(d.handler, streams), d.log)
		srv.RegisterOnShutdown(endStreams)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(d.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("HTTP server stopped", zap.Error(err))
			}
		}()
		d.log.Info("serving metrics and health", zap.String("addr", d.HTTPAddr()))
	}

	// Readiness fails from the moment the stop begins, while calls finish in the grace
	// period, so a load balancer moves on; the flag is set again below because the
	// AfterFunc's goroutine may not have run yet when the dispatcher returns.
	defer context.AfterFunc(ctx, func() { d.stopping.Store(true) })()
	err := d.dispatcher.Run(ctx)
	d.stopping.Store(true)
	d.log.Info("dispatcher stopped; closing connections")
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	stopInfra()
	wg.Wait()
	flushCalls(d.calls, d.log.Named("detector"))
	return err
}

// newHTTPServer bounds every phase of a connection, so idle or slow clients cannot hold the
// listener's connections or goroutines for ever.
//
// What net/http logs itself (a handler's panic, an accept error) goes to log as well, as JSON
// with numbers masked like every other line, instead of to stderr as plain text.
func newHTTPServer(h http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// endingStreams ends the requests of the event streams (the API's and the supervisor page's)
// when stop is done; other requests are left to finish.
func endingStreams(h http.Handler, stop context.Context) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != api.EventsPath && r.URL.Path != web.EventsPath {
			h.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// checkDurability warns, in the log and in /readyz, of a Redis that may lose promises.
// It never stops the start: a Redis callbackd cannot configure is the operator's to fix.
func (d *Daemon) checkDurability(ctx context.Context) {
	warnings, err := d.store.Durability(ctx)
	if err != nil {
		d.log.Warn("could not check whether Redis may lose promises", zap.Error(err))
		return
	}
	for _, w := range warnings {
		d.log.Warn("Redis may lose promises", zap.String("warning", w))
	}
	d.mu.Lock()
	d.warnings = warnings
	d.mu.Unlock()
}

func (d *Daemon) startWarnings() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.warnings
}

// problems is the daemon's readiness: not while shutting down, and only with Redis and
// every Asterisk connected.
func (d *Daemon) problems(ctx context.Context) []string {
	var problems []string
	if d.stopping.Load() {
		problems = append(problems, "shutting down: no new callbacks are started")
	}
	if err := d.rdb.Ping(ctx).Err(); err != nil {
		problems = append(problems, "redis: "+d.dials.explain(err))
	}
	for _, c := range d.conns.Conns() {
		if h := c.Health(); h != "" {
			problems = append(problems, "asterisk "+c.Name()+": "+h)
		}
	}
	return problems
}

// pbxDirectory finds a connected Asterisk by entity id for the dialer.
type pbxDirectory struct {
	cfg   *config.Config
	conns *ari.Manager
}

func (p pbxDirectory) PBX(id string) (dialer.PBX, bool) {
	for _, c := range p.conns.Conns() {
		if c.AsteriskID() != id && c.Name() != id {
			continue
		}
		for _, a := range p.cfg.Asterisk {
			if a.Name == c.Name() {
				return dialer.PBX{ID: c.AsteriskID(), Name: c.Name(), REST: c.Client(), MonitorApp: c.MonitorApp(), ControlApp: c.ControlApp()}, true
			}
		}
	}
	return dialer.PBX{}, false
}
