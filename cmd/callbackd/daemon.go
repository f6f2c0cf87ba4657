package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
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
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// daemon is callbackd's main job wired together: ARI connections → detector → intake →
// promise store ← dispatcher → agents and customers, plus the HTTP endpoint for metrics and
// health. `run` and `demo` build the same daemon; only the config and the clock differ.
type daemon struct {
	cfg   *config.Config
	clk   clock.Clock
	log   *zap.Logger
	reg   *prometheus.Registry
	rdb   redis.UniversalClient
	store *queue.Store

	conns      *ari.Manager
	detector   *detect.Detector
	intake     *dialer.Intake
	pool       *dialer.Pool
	control    *dialer.Control
	dispatcher *dialer.Dispatcher
	metrics    *dialer.Metrics

	listener net.Listener
	stopping atomic.Bool
}

// daemonHooks let the demo and tests watch the daemon.
type daemonHooks struct {
	onIntake   func(dialer.IntakeResult)
	onProgress func(dialer.Progress)
	onARI      func(name string, up bool)
	instance   string
	// listen overrides cfg.HTTP.Listen ("" keeps it; "-" serves nothing).
	listen string
}

func newDaemon(cfg *config.Config, rdb redis.UniversalClient, clk clock.Clock, log *zap.Logger, hooks daemonHooks) (*daemon, error) {
	d := &daemon{cfg: cfg, clk: clk, log: log, reg: prometheus.NewRegistry(), rdb: rdb, control: dialer.NewControl()}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var err error
	if d.store, err = storeFor(cfg, rdb, clk); err != nil {
		return nil, err
	}
	policy := dialer.PolicyFrom(cfg)
	d.metrics = dialer.NewMetrics(d.reg, policy.QueueNames())
	mask := phone.Mask
	if !cfg.Log.MaskNumbers {
		mask = func(n string) string { return n }
	}
	instance := hooks.instance
	if instance == "" {
		instance = instanceName()
	}

	d.pool = dialer.NewPool(policy.Agents, clk, log.Named("agents"))

	ariMetrics := ari.NewMetrics(d.reg)
	d.conns, err = connectionsFor(cfg, clk, log.Named("ari"), ariMetrics, func(name string, up bool) {
		if !up {
			for _, c := range d.conns.Conns() {
				if c.Name() == name {
					d.pool.Disconnected(c.AsteriskID())
				}
			}
		}
		if hooks.onARI != nil {
			hooks.onARI(name, up)
		}
	})
	if err != nil {
		return nil, err
	}
	d.dispatcher, err = dialer.NewDispatcher(dialer.DispatcherOptions{
		Policy: policy, Store: d.store, Reservations: queue.NewReservations(rdb, cfg.Redis.KeyPrefix),
		Pool: d.pool, Control: d.control, PBXs: pbxDirectory{cfg: cfg, conns: d.conns},
		Metrics: d.metrics, Clock: clk, Logger: log.Named("dialer"), Instance: instance, Mask: mask,
		Wakeups:    d.store.Wakeups,
		OnProgress: hooks.onProgress,
	})
	if err != nil {
		return nil, err
	}
	d.intake, err = dialer.NewIntake(dialer.IntakeOptions{Policy: policy, Store: d.store, Metrics: d.metrics,
		Clock: clk, Logger: log.Named("intake"), Mask: mask,
		OnResult: func(r dialer.IntakeResult) {
			d.dispatcher.Wake()
			if hooks.onIntake != nil {
				hooks.onIntake(r)
			}
		}})
	if err != nil {
		return nil, err
	}
	dopts, err := detectorFor(cfg)
	if err != nil {
		return nil, err
	}
	dopts.Sink, dopts.Clock, dopts.Logger, dopts.Mask = d.intake, clk, log.Named("detector"), mask
	d.detector = detect.New(dopts)
	d.metrics.RegisterStateCollector(d.reg, policy, d.store, d.pool, d.dispatcher.HandleTime, log.Named("metrics"))

	listen := cfg.HTTP.Listen
	if hooks.listen != "" {
		listen = hooks.listen
	}
	if listen != "-" {
		if d.listener, err = net.Listen("tcp", listen); err != nil {
			return nil, fmt.Errorf("http.listen %s: %w", listen, err)
		}
	}
	return d, nil
}

// instanceName tells daemons sharing one Redis apart in leases and reservations.
func instanceName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "callbackd"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// HTTPAddr is where /metrics, /healthz and /readyz are served ("" when not served).
func (d *daemon) HTTPAddr() string {
	if d.listener == nil {
		return ""
	}
	return d.listener.Addr().String()
}

// Run runs the daemon until ctx ends, then shuts down in order: stop claiming, let calls
// finish (dialer.shutdown_grace), hand back what is left, and only then close ARI, so hang-ups
// and their events still flow during the grace period.
func (d *daemon) Run(ctx context.Context) error {
	if err := d.store.Load(ctx); err != nil {
		if d.listener != nil {
			_ = d.listener.Close()
		}
		return fmt.Errorf("starting: %w", err)
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
	monitor := ari.Handlers{d.detector, d.pool}
	run("ARI connections", func(c context.Context) error { return d.conns.Run(c, monitor, d.control) })
	run("intake", d.intake.Run)
	run("agent pool", func(c context.Context) error { return d.pool.Run(c, pbxDirectory{cfg: d.cfg, conns: d.conns}) })
	var srv *http.Server
	if d.listener != nil {
		srv = &http.Server{Handler: d.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(d.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("HTTP server stopped", zap.Error(err))
			}
		}()
		d.log.Info("serving metrics and health", zap.String("addr", d.HTTPAddr()))
	}

	go func() { <-ctx.Done(); d.stopping.Store(true) }()
	err := d.dispatcher.Run(ctx)
	d.log.Info("dispatcher stopped; closing connections")
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	stopInfra()
	wg.Wait()
	return err
}

// httpHandler serves /metrics, /healthz (the process answers), /readyz (Redis and every
// ARI connection up) and the agents: GET /agents, POST /agents/{id}/pause and /resume. The listener is loopback unless a token is configured (validation
// enforces it); with a token every path but /healthz needs it.
func (d *daemon) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var problems []string
		if d.stopping.Load() {
			problems = append(problems, "shutting down: no new callbacks are started")
		}
		if err := d.rdb.Ping(ctx).Err(); err != nil {
			problems = append(problems, "redis: "+err.Error())
		}
		for name, up := range d.conns.Connected() {
			if !up {
				problems = append(problems, "asterisk "+name+": not connected")
			}
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range problems {
				fmt.Fprintln(w, p)
			}
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /agents", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, d.pool.Agents())
	})
	pause := func(paused bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id := r.PathValue("id")
			if err := d.pool.SetPaused(id, paused); err != nil {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
				return
			}
			d.log.Info("agent pause changed", zap.String("agent", id), zap.Bool("paused", paused))
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux.HandleFunc("POST /agents/{id}/pause", pause(true))
	mux.HandleFunc("POST /agents/{id}/resume", pause(false))
	token := d.cfg.HTTP.Token.Reveal()
	if token == "" {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if r.URL.Path != "/healthz" && subtle.ConstantTimeCompare(got, []byte("Bearer "+token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="callbackd"`)
			http.Error(w, "missing or wrong bearer token (http.token)", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
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
				return dialer.PBX{ID: c.AsteriskID(), Name: c.Name(), REST: c.Client(), MonitorApp: a.MonitorApp, ControlApp: a.ControlApp}, true
			}
		}
	}
	return dialer.PBX{}, false
}
