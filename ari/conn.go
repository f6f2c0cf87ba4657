package ari

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/stasisapp"
)

// Default application names. The monitor app watches everything (subscribeAll) and is never a
// Stasis() target; the control app owns the callback legs. One app doing both would receive
// every event of its own legs twice, and a subscribeAll app is torn down on disconnect in a way
// that loses StasisEnd for channels still inside it (notes §1, §5).
const (
	DefaultMonitorApp = "callbackd-monitor"
	DefaultControlApp = "callbackd"
)

// DefaultPingInterval is Options.PingInterval's default.
const DefaultPingInterval = 20 * time.Second

// maxFrame is the largest event frame accepted. A ChannelVarset of a long variable or a
// bridge with many members can pass the websocket library's 32 KiB default.
const maxFrame = 8 << 20

// ErrUnauthorized is wrapped when Asterisk rejects the username or password.
var ErrUnauthorized = errors.New("ARI rejected the username or password (check ari.conf)")

// Options configure a Conn.
type Options struct {
	// Name identifies this Asterisk in logs and metrics ("pbx1"); default the URL's host.
	Name string
	// URL is the ARI base, "http://host:8088/ari".
	URL                string
	Username, Password string
	// MonitorApp and ControlApp default to DefaultMonitorApp and DefaultControlApp.
	MonitorApp, ControlApp string
	// MonitorEvents is the monitor app's event filter; default DefaultMonitorEvents.
	MonitorEvents []EventType
	// RequestTimeout bounds each REST call, each WebSocket handshake and each ping.
	RequestTimeout time.Duration
	// PingInterval is how often each events socket is pinged; default DefaultPingInterval,
	// negative to never ping. Without pings a PBX that vanished without closing TCP (power
	// loss, a firewall dropping state) would leave the reader waiting forever.
	PingInterval time.Duration
	// Backoff is the reconnect schedule; the zero value means DefaultBackoff.
	Backoff Backoff
	// Clock times reconnects and stamps snapshots; default clock.Real{}.
	Clock clock.Clock
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// Rand returns numbers in [0, 1) for jitter; default math/rand/v2.Float64.
	Rand func() float64
	// Metrics is optional.
	Metrics *Metrics
	// OnState, when set, is called with up=true once the sockets are connected and resynced
	// and with up=false when a connection drops. Calls come from Run's goroutine, in order;
	// it must not block.
	OnState func(name string, up bool)
	// OnFailure, when set, is called with the reason each time a connection attempt fails or
	// a connection drops, before the reconnect's wait. Same goroutine and rules as OnState.
	OnFailure func(name string, err error)
	// HTTPClient is used for REST and the WebSocket handshakes; default a fresh client.
	HTTPClient *http.Client
	// MaxBacklogEvents and MaxBacklogBytes bound each app's events read and not yet handled;
	// past either the socket is closed and the state resynced (ErrBacklogFull). Defaults
	// DefaultMaxBacklogEvents and DefaultMaxBacklogBytes.
	MaxBacklogEvents int
	MaxBacklogBytes  int64
}

// Default backlog bounds: far above what a handler that keeps up ever holds (minutes of a busy
// PBX's events), far below what would starve the host of memory.
const (
	DefaultMaxBacklogEvents = 50_000
	DefaultMaxBacklogBytes  = 128 << 20
)

// Conn is the connection to one Asterisk: the monitor and control event sockets, reconnects
// and resyncs, and the REST client.
//
// Each app's events are handled by one goroutine, in the order Asterisk wrote them to the
// socket. That single ordered stream is all "ordered per-call processing" needs: Asterisk
// emits the events of one channel in order, the detector groups them per call (linkedid)
// itself, and nothing in the detector is slow enough to be worth parallelising per call at
// the price of reordering across the channels of one call.
type Conn struct {
	opts    Options
	client  *Client
	clk     clock.Clock
	log     *zap.Logger
	rnd     func() float64
	backoff Backoff
	events  string // base ws URL of /events, without query

	// stateMu orders the OnState calls of the session (Run's goroutine) and of an
	// ApplicationReplaced (the consumer's), so the last call always tells the truth.
	stateMu sync.Mutex

	mu          sync.Mutex
	running     bool
	up          bool
	sessions    uint64        // counts sessions, so a late frame of an old socket cannot act on a new one
	replacedApp string        // an app another client took over in this session ("": none)
	takenOver   chan struct{} // replaced tells the session, which then ends after a while
	asteriskID  string
	lastStartup time.Time
	lastErr     error // why the last attempt failed or the last connection dropped; nil while up
}

// NewConn checks opts and returns a Conn; it does not connect until Run.
func NewConn(opts Options) (*Conn, error) {
	base, err := parseBaseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = base.Host
	}
	if opts.MonitorApp == "" {
		opts.MonitorApp = DefaultMonitorApp
	}
	if opts.ControlApp == "" {
		opts.ControlApp = DefaultControlApp
	}
	if opts.MonitorApp == opts.ControlApp {
		return nil, fmt.Errorf("ari: %s: monitor and control app are both %q; they must differ", opts.Name, opts.MonitorApp)
	}
	for _, app := range []string{opts.MonitorApp, opts.ControlApp} {
		if err := stasisapp.Check(app); err != nil {
			return nil, fmt.Errorf("ari: %s: %w", opts.Name, err)
		}
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.MonitorEvents == nil {
		opts.MonitorEvents = DefaultMonitorEvents
	}
	if opts.MaxBacklogEvents < 0 || opts.MaxBacklogBytes < 0 {
		return nil, fmt.Errorf("ari: %s: backlog bounds must not be negative", opts.Name)
	}
	if opts.MaxBacklogEvents == 0 {
		opts.MaxBacklogEvents = DefaultMaxBacklogEvents
	}
	if opts.MaxBacklogBytes == 0 {
		opts.MaxBacklogBytes = DefaultMaxBacklogBytes
	}
	opts.Backoff = opts.Backoff.withDefaults()
	if err := opts.Backoff.validate(); err != nil {
		return nil, fmt.Errorf("ari: %s: %w", opts.Name, err)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	client, err := NewClient(ClientOptions{URL: opts.URL, Username: opts.Username, Password: opts.Password,
		RequestTimeout: opts.RequestTimeout, HTTPClient: opts.HTTPClient, Metrics: opts.Metrics})
	if err != nil {
		return nil, fmt.Errorf("ari: %s: %w", opts.Name, err)
	}
	ev := *base
	ev.Path = base.Path + "/events"
	// The series exist from the start, so an Asterisk that is down from the first moment
	// shows as 0 rather than as no data, which alerts would miss.
	opts.Metrics.register(opts.Name)
	return &Conn{
		opts: opts, client: client, clk: opts.Clock, rnd: opts.Rand, backoff: opts.Backoff,
		log:    opts.Logger.With(zap.String("asterisk", opts.Name), zap.String("ari_url", client.BaseURL())),
		events: ev.String(), takenOver: make(chan struct{}, 1),
	}, nil
}

// Name is Options.Name.
func (c *Conn) Name() string { return c.opts.Name }

// MonitorApp and ControlApp are the application names this connection registers.
func (c *Conn) MonitorApp() string { return c.opts.MonitorApp }

// ControlApp: see MonitorApp.
func (c *Conn) ControlApp() string { return c.opts.ControlApp }

// Client is the REST client of this Asterisk.
func (c *Conn) Client() *Client { return c.client }

// Connected reports whether the event sockets are up and the last resync succeeded.
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

// AsteriskID is the entity id Asterisk reported at the last resync, "" before the first.
func (c *Conn) AsteriskID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asteriskID
}

// Run connects, resyncs and delivers events until ctx ends, reconnecting with backoff
// whenever a socket drops. monitor receives the monitor app's events and is required; control
// receives the control app's and may be nil, in which case the control app is not registered
// at all, so Stasis(control app) fails at once instead of parking callers nobody handles.
// Run returns nil once ctx ends, or an error for bad arguments.
func (c *Conn) Run(ctx context.Context, monitor, control Handler) error {
	if monitor == nil {
		return fmt.Errorf("ari: %s: run: monitor handler is nil", c.opts.Name)
	}
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return fmt.Errorf("ari: %s: run: already running", c.opts.Name)
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	monQ := newQueue()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.consume(ctx, "monitor", monQ, monitor)
	}()
	var ctlQ *queue
	if control != nil {
		ctlQ = newQueue()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.consume(ctx, "control", ctlQ, control)
		}()
	}

	attempt := 0
	for {
		started := c.clk.Now()
		resynced, err := c.session(ctx, monQ, ctlQ)
		if ctx.Err() != nil {
			return nil
		}
		c.failed(err)
		if resynced && c.clk.Now().Sub(started) >= c.backoff.Max {
			// A connection that got as far as a resync and then stayed up a while was healthy:
			// start the schedule over. One that drops right after each resync (a proxy
			// timing out, an app fight) keeps backing off instead of reconnecting every
			// half second and re-reading every channel each time.
			attempt = 0
		}
		delay := c.backoff.Delay(attempt, c.rnd())
		if errors.Is(err, ErrUnauthorized) || StatusOf(err) == http.StatusUnauthorized {
			// Retrying a wrong password quickly only fills Asterisk's security log.
			delay = c.backoff.Delay(1<<20, c.rnd())
			c.log.Error("ARI rejected the credentials; check username/password in the config and ari.conf",
				zap.String("username", c.opts.Username), zap.Duration("retry_in", delay))
		} else {
			c.log.Warn("ARI connection lost or failed; reconnecting", zap.Error(err), zap.Duration("retry_in", delay))
		}
		attempt++
		select {
		case <-c.clk.After(delay):
		case <-ctx.Done():
			return nil
		}
		c.opts.Metrics.reconnect(c.opts.Name)
	}
}

// session runs one connection: both sockets, the resync, then reading until a socket fails.
// resynced tells whether the snapshot was taken and handed on.
func (c *Conn) session(ctx context.Context, monQ, ctlQ *queue) (resynced bool, err error) {
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel below, so the readers stop promptly
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4) // a reader and a pinger per socket
	c.mu.Lock()
	c.sessions++
	sid := c.sessions
	// This session registers the apps again and so takes back any another client took over.
	c.replacedApp = ""
	c.mu.Unlock()
	select {
	case <-c.takenOver: // a takeover of the last session; this one starts afresh
	default:
	}

	type socket struct {
		app  string
		all  bool
		q    *queue
		gate *gate
	}
	socks := []*socket{{app: c.opts.MonitorApp, all: true, q: monQ}}
	if ctlQ != nil {
		socks = append(socks, &socket{app: c.opts.ControlApp, q: ctlQ})
	}
	for _, s := range socks {
		ws, err := c.dial(sctx, s.app, s.all)
		if err != nil {
			return false, err
		}
		s.gate = &gate{q: s.q, session: sid, bound: backlogBound{events: int64(c.opts.MaxBacklogEvents), bytes: c.opts.MaxBacklogBytes}}
		wg.Add(2)
		go func() {
			defer wg.Done()
			errc <- c.read(sctx, ws, s.app, s.gate)
		}()
		go func() {
			defer wg.Done()
			errc <- c.keepalive(sctx, ws, s.app)
		}()
	}
	snap, err := c.resync(sctx)
	if err != nil {
		return false, err
	}
	for _, s := range socks {
		s.gate.openWith(snap)
	}
	c.setUp(true, snap)
	c.log.Info("ARI connected and resynced", zap.String("asterisk_id", snap.AsteriskID),
		zap.Int("channels", len(snap.Channels)), zap.Int("bridges", len(snap.Bridges)),
		zap.Bool("restarted", snap.Restarted))
	defer c.setUp(false, Snapshot{})
	select {
	case err = <-errc:
		return true, err
	case <-ctx.Done():
		return true, ctx.Err()
	case <-c.takenOver:
	}
	// Another client holds one of our apps. Take it back only after the longest reconnect
	// delay: a stray tool gets its turn and is then replaced, and two misconfigured daemons
	// trade the app every Backoff.Max instead of fighting in a tight loop.
	select {
	case err = <-errc:
		return true, err
	case <-ctx.Done():
		return true, ctx.Err()
	case <-c.clk.After(c.backoff.Max):
		return true, fmt.Errorf("ari: %s: %w", c.opts.Name, ErrApplicationReplaced)
	}
}

// dial opens the events socket of app. Credentials go in the Authorization header, never in
// the URL (api_key=), so no URL that reaches a log or an error carries them.
func (c *Conn) dial(ctx context.Context, app string, subscribeAll bool) (*websocket.Conn, error) {
	q := url.Values{"app": {app}}
	if subscribeAll {
		q.Set("subscribeAll", "true")
	}
	u := c.events + "?" + q.Encode()
	hc := *c.opts.HTTPClient
	hc.Timeout = c.client.timeout // the library applies it to the handshake only
	auth := base64.StdEncoding.EncodeToString([]byte(c.opts.Username + ":" + c.opts.Password))
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: &hc,
		HTTPHeader: http.Header{"Authorization": {"Basic " + auth}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return nil, fmt.Errorf("ari: connecting events socket of %s: %w", app, ErrUnauthorized)
		}
		return nil, fmt.Errorf("ari: connecting events socket of %s: %w", app, err)
	}
	ws.SetReadLimit(maxFrame)
	return ws, nil
}

// read copies frames from ws into g until the socket fails. It never waits on anything but
// the socket: see queue.
func (c *Conn) read(ctx context.Context, ws *websocket.Conn, app string, g *gate) error {
	defer ws.CloseNow()
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return fmt.Errorf("ari: reading events of %s: %w", app, err)
		}
		if err := g.push(data); err != nil {
			g.q.discard()
			c.opts.Metrics.backlogOverflow(c.opts.Name)
			return fmt.Errorf("ari: reading events of %s: %w", app, err)
		}
	}
}

// keepalive pings ws every PingInterval; a ping that gets no pong within RequestTimeout
// closes the socket, which ends the session.
func (c *Conn) keepalive(ctx context.Context, ws *websocket.Conn, app string) error {
	if c.opts.PingInterval < 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.clk.After(c.opts.PingInterval):
		}
		pctx, cancel := context.WithTimeout(ctx, c.client.timeout)
		err := ws.Ping(pctx)
		cancel()
		if err != nil {
			ws.CloseNow()
			return fmt.Errorf("ari: pinging events socket of %s: %w", app, err)
		}
	}
}

// resync re-applies the monitor's event filter (Asterisk forgets it with the socket) and
// takes the snapshot.
func (c *Conn) resync(ctx context.Context) (Snapshot, error) {
	if err := c.client.SetEventFilter(ctx, c.opts.MonitorApp, c.opts.MonitorEvents); err != nil {
		if !filterUnsupported(err) {
			return Snapshot{}, fmt.Errorf("ari: resync: %w", err)
		}
		// Asterisk before 16.29/18.15/19.7 has no eventFilter: everything still works, the
		// monitor just reads more events.
		c.log.Warn("this Asterisk cannot filter ARI events; the monitor app receives all of them", zap.Error(err))
	}
	info, err := c.client.Info(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("ari: resync: %w", err)
	}
	chans, err := c.client.Channels(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("ari: resync: %w", err)
	}
	bridges, err := c.client.Bridges(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("ari: resync: %w", err)
	}
	c.mu.Lock()
	restarted := !c.lastStartup.IsZero() && !c.lastStartup.Equal(info.StartupTime)
	c.lastStartup = info.StartupTime
	c.asteriskID = info.EntityID
	c.mu.Unlock()
	return Snapshot{AsteriskID: info.EntityID, StartupTime: info.StartupTime, Restarted: restarted,
		At: c.clk.Now(), Channels: chans, Bridges: bridges}, nil
}

// filterUnsupported tells "this Asterisk has no eventFilter resource" from real failures,
// such as the app being unknown ("Application not found").
func filterUnsupported(err error) bool {
	var he *HTTPError
	if !errors.As(err, &he) {
		return false
	}
	switch he.Status {
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	case http.StatusNotFound:
		return he.Message != "Application not found"
	}
	return false
}

func (c *Conn) setUp(up bool, snap Snapshot) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	c.mu.Lock()
	if up && c.replacedApp != "" {
		// The ApplicationReplaced of this session was handled between the resync and here:
		// another client holds an app, so this session never counts as up.
		c.mu.Unlock()
		return
	}
	changed := c.up != up
	c.up = up
	if up {
		c.lastErr = nil
	}
	c.mu.Unlock()
	if !changed {
		return
	}
	c.opts.Metrics.setConnected(c.opts.Name, up)
	if c.opts.OnState != nil {
		c.opts.OnState(c.opts.Name, up)
	}
}

// consume hands one app's stream to h, in order, until ctx ends.
func (c *Conn) consume(ctx context.Context, role string, q *queue, h Handler) {
	asteriskID := ""
	defer c.opts.Metrics.watchBacklog(c.opts.Name, role, func() float64 { return float64(q.pending.Load()) })()
	for {
		its, err := q.popAll(ctx)
		if err != nil {
			return
		}
		for i := range its {
			if ctx.Err() != nil {
				return
			}
			if s := its[i].snap; s != nil {
				asteriskID = s.AsteriskID
				h.Resync(*s)
			} else {
				c.deliver(role, its[i], asteriskID, h)
			}
			q.done(its[i])
			its[i] = item{} // the batch can be large: let handled frames go
		}
	}
}

func (c *Conn) deliver(role string, it item, asteriskID string, h Handler) {
	frame := it.frame
	ev, err := Decode(frame)
	if err != nil {
		c.opts.Metrics.malformedEvent()
		// The frame itself may hold phone numbers: log its size, not its content.
		c.log.Debug("skipping malformed ARI event", zap.String("app", role), zap.Int("bytes", len(frame)), zap.Error(err))
		return
	}
	if !knownEventTypes[ev.Type] {
		c.opts.Metrics.unknownEvent()
		c.log.Debug("skipping ARI event of unknown type", zap.String("app", role), zap.String("type", string(ev.Type)))
		return
	}
	c.opts.Metrics.event(ev.Type)
	if ev.AsteriskID == "" {
		ev.AsteriskID = asteriskID
	}
	if ev.Type == EventApplicationReplaced {
		c.replaced(it.session, ev.Application)
	}
	h.HandleEvent(ev)
}
