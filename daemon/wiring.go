package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/api"
	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/stasisapp"
	"github.com/callbackd/callbackd/queue"
	"github.com/callbackd/callbackd/web"
)

// This file turns a validated Config into the daemon's parts; the subcommands that need one
// part (record a connection, promises the store, replay the detector settings) build it
// the way the daemon does.

// DetectorOptions returns the detector settings of cfg (sink, clock and logger are the
// caller's). cfg must have been validated: its patterns are the ones validation compiled.
func DetectorOptions(cfg *config.Config) (detect.Options, error) {
	dc := cfg.Detector
	opts := detect.Options{InboundContexts: dc.InboundContexts, DefaultCountry: dc.DefaultCountry, DefaultCountryCode: dc.DefaultCountryCode}
	opts.InternalExtension, opts.CustomerNumber = cfg.DetectorPatterns()
	if opts.InternalExtension == nil || opts.CustomerNumber == nil {
		return detect.Options{}, errors.New("detector settings: the configuration has not been validated")
	}
	for _, a := range cfg.Asterisk {
		opts.ControlApps = append(opts.ControlApps, a.ControlApp)
	}
	return opts, nil
}

// ConnOptions is one configured Asterisk as connection options; callers add what is theirs
// (metrics, a state callback, another monitor app).
func ConnOptions(a config.Asterisk, clk clock.Clock, log *zap.Logger) ari.Options {
	if log == nil {
		log = zap.NewNop()
	}
	return ari.Options{
		Name:           a.Name,
		URL:            a.URL.Reveal(),
		Username:       a.Username,
		Password:       a.Password.Reveal(),
		MonitorApp:     a.MonitorApp,
		ControlApp:     a.ControlApp,
		RequestTimeout: a.RequestTimeout.D(),
		Backoff: ari.Backoff{Initial: a.Reconnect.Initial.D(), Max: a.Reconnect.Max.D(),
			Multiplier: ari.DefaultBackoff.Multiplier, Jitter: ari.DefaultBackoff.Jitter},
		Clock:  clk,
		Logger: log, // the Conn adds asterisk=<name> itself
	}
}

// connectionsFor returns one ARI connection per configured Asterisk; edits change each one's
// options last.
func connectionsFor(cfg *config.Config, clk clock.Clock, log *zap.Logger, metrics *ari.Metrics, onState func(string, bool), edits ...func(*ari.Options)) (*ari.Manager, error) {
	var conns []*ari.Conn
	for i, a := range cfg.Asterisk {
		o := ConnOptions(a, clk, log)
		o.Metrics, o.OnState = metrics, onState
		for _, edit := range edits {
			edit(&o)
		}
		c, err := ari.NewConn(o)
		if err != nil {
			return nil, fmt.Errorf("asterisk[%d] (%s): %w", i, a.Name, err)
		}
		conns = append(conns, c)
	}
	return ari.NewManager(conns...)
}

// InstanceID is the id a daemon's Stasis application names carry: instance_id, else one
// derived from the host name, the same on every start of the host ("" when the host name
// yields none: the names as configured).
func InstanceID(cfg *config.Config, hostname func() (string, error)) string {
	if cfg.InstanceID != "" {
		return cfg.InstanceID
	}
	host, err := hostname()
	if err != nil {
		return ""
	}
	return stasisapp.FromHost(host)
}

// instanceApps gives every connection the application names of instance id.
func instanceApps(id string) func(*ari.Options) {
	return func(o *ari.Options) {
		o.MonitorApp, o.ControlApp = stasisapp.Names(o.MonitorApp, o.ControlApp, id)
	}
}

// RedisClient returns a client for cfg's Redis: standalone (addr or URL), Sentinel or Cluster.
func RedisClient(rc config.Redis) (redis.UniversalClient, error) {
	switch rc.Mode() {
	case "url":
		opts, err := redis.ParseURL(rc.URL.Reveal())
		if err != nil {
			// The URL may carry a password: name the key, not the value.
			return nil, fmt.Errorf("redis.url does not parse as a redis:// or rediss:// URL")
		}
		opts.DialTimeout = rc.DialTimeout.D()
		return redis.NewClient(opts), nil
	default:
		u := &redis.UniversalOptions{
			Addrs:       []string{rc.Addr},
			Username:    rc.Username,
			Password:    rc.Password.Reveal(),
			DB:          rc.DB,
			DialTimeout: rc.DialTimeout.D(),
		}
		switch rc.Mode() {
		case "sentinel":
			u.Addrs, u.MasterName = rc.Sentinel.Addrs, rc.Sentinel.MasterName
		case "cluster":
			u.Addrs = rc.Cluster.Addrs
			return redis.NewClusterClient(u.Cluster()), nil
		}
		return redis.NewUniversalClient(u), nil
	}
}

// apiTokens are http.tokens as the API takes them.
func apiTokens(tokens []config.HTTPToken) []api.Token {
	out := make([]api.Token, 0, len(tokens))
	for _, t := range tokens {
		out = append(out, api.Token{Name: t.Name, Secret: t.Token.Reveal(), Roles: t.Roles})
	}
	return out
}

// NewStore returns the promise store for cfg's queues on rdb.
func NewStore(cfg *config.Config, rdb redis.UniversalClient, clk clock.Clock) (*queue.Store, error) {
	return newStore(cfg, rdb, clk, nil, nil)
}

// newStore is NewStore with hooks for the broken jobs the store moves aside and for the writes
// too few replicas had in time.
func newStore(cfg *config.Config, rdb redis.UniversalClient, clk clock.Clock, onQuarantine func(queue.Quarantined),
	onUnreplicated func(queue.Unreplicated)) (*queue.Store, error) {
	names := make([]string, 0, len(cfg.Queues))
	ages := map[string]time.Duration{}
	for _, q := range cfg.Queues {
		names = append(names, q.Name)
		ages[q.Name] = q.MaxOpenAge.D()
	}
	return queue.New(rdb, queue.Options{Prefix: cfg.Redis.KeyPrefix, Clock: clk, Retention: time.Duration(cfg.Retention),
		Queues: names, MaxOpenAge: ages, OnQuarantine: onQuarantine,
		WaitReplicas: cfg.Redis.WaitReplicas, WaitTimeout: cfg.Redis.WaitTimeout.D(), OnUnreplicated: onUnreplicated})
}

// withPage serves the supervisor page at / and under /ui/, and the API everywhere else. The
// page authenticates with a cookie of its own (a browser's EventSource cannot send a bearer
// header), so it sits beside the API's token check, not behind it.
func withPage(apiHandler, page http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/{$}", page)
	mux.Handle("/ui/", page)
	mux.Handle("/", apiHandler)
	return mux
}

// pagePromises is what the supervisor page reads and does: the store's reads, and a cancel
// that goes through the engine, so it is counted like one from the API.
type pagePromises struct {
	*queue.Store
	admin *dialer.Admin
}

func (p pagePromises) Cancel(ctx context.Context, ref queue.Ref, detail string) (queue.Job, error) {
	return p.admin.CancelRef(ctx, ref, detail)
}

// pageAccess is what a token may do on the supervisor page: what its roles allow on the API
// (read the page, write to cancel, pii to see numbers); with no token configured, everyone
// may, as on the API (the listener is then loopback only).
func pageAccess(tokens *api.Tokens) web.Authorize {
	return func(got string) (web.Access, bool) {
		if tokens.Open() {
			return web.Access{Name: "a local supervisor (no http token)", Read: true, Write: true, Numbers: true}, true
		}
		r, ok := tokens.Roles(got)
		if !ok {
			return web.Access{}, false
		}
		return web.Access{Name: r.Name, Read: r.Has(config.RoleRead), Write: r.Has(config.RoleWrite),
			Numbers: r.Has(config.RolePII)}, true
	}
}

// newCallMemory keeps the detector's open calls in cfg's Redis (see queue.CallMemory).
func newCallMemory(cfg *config.Config, rdb redis.UniversalClient, clk clock.Clock, log *zap.Logger) *queue.CallMemory {
	return queue.NewCallMemory(rdb, queue.CallMemoryOptions{Prefix: cfg.Redis.KeyPrefix, Clock: clk,
		OnError: func(err error) {
			log.Warn("keeping open calls in Redis failed; the detector goes on in memory, and the write is retried",
				zap.Error(err))
		}})
}

// restoreCalls hands the detector the calls a previous process (or another daemon) kept. A
// Redis that cannot be read leaves the detector starting empty, as before calls were kept: the
// calls in progress then make no promise when they end.
func restoreCalls(ctx context.Context, mem *queue.CallMemory, det *detect.Detector, log *zap.Logger) {
	calls, refused, err := mem.Load(ctx)
	if err != nil {
		log.Warn("reading the open calls kept in Redis failed; calls in progress before the start are not followed",
			zap.Error(err))
		return
	}
	for _, err := range refused {
		log.Error("skipping an open call kept in Redis", zap.Error(err))
	}
	restored := 0
	for _, c := range calls {
		if err := det.Restore(c.AsteriskID, c.LinkedID, c.Record); err != nil {
			log.Error("skipping an open call kept in Redis", zap.Error(err))
			continue
		}
		restored++
	}
	if len(calls)+len(refused) > 0 {
		log.Info("open calls restored from Redis", zap.Int("restored", restored), zap.Int("skipped", len(calls)+len(refused)-restored))
	}
}

// flushCalls writes, at shutdown, what the detector noted last, so the next start knows the
// calls still in progress.
func flushCalls(mem *queue.CallMemory, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := mem.Flush(ctx); err != nil {
		log.Warn("writing the last open calls to Redis at shutdown failed; the next start may miss them", zap.Error(err))
	}
}
