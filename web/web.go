// Package web is the supervisor page: the open promises earliest deadline first with their
// time left and predicted slack, the agents, and each queue's kept ratio and at-risk count,
// kept live by the promise event stream, with a cancel button for a token that may write.
// It is server-rendered (html/template) with a little plain JavaScript, and every asset is
// embedded: the page works on a network that reaches nothing but the daemon.
//
// It sees the daemon through the small interfaces below and authenticates through
// Options.Authorize, so the daemon decides what a token may do.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// EventsPath is the page's event stream: a request to it lasts as long as the page follows.
const EventsPath = "/ui/events"

// Promises is what the page reads of the promise store, and the one thing it changes.
type Promises interface {
	Queues() []string
	List(ctx context.Context, queueName string, o queue.ListOptions) ([]queue.Job, error)
	Stats(ctx context.Context, queueName string) (queue.Stats, error)
	Outcomes(ctx context.Context, queueName string, window time.Duration) (map[queue.State]int64, error)
	Cancel(ctx context.Context, ref queue.Ref, detail string) (queue.Job, error)
}

// Forecast predicts when each pending promise of a queue will be called back.
type Forecast interface {
	Queue(ctx context.Context, queueName string, now time.Time) ([]dialer.Prediction, error)
}

// Agents is the agent pool.
type Agents interface {
	Agents() []dialer.AgentView
}

// Events is the promise event stream the page follows.
type Events interface {
	EventsNow(ctx context.Context) (queue.Cursor, error)
	ReadEvents(ctx context.Context, c queue.Cursor, count int, block time.Duration) ([]queue.Event, queue.Cursor, error)
}

// Access is what a token may do on the page.
type Access struct {
	// Name says who acted, in a cancelled promise's history.
	Name string
	// Read lets the token see the page, Write cancel promises, Numbers see numbers unmasked.
	Read, Write, Numbers bool
}

// Authorize tells what token may do; false when it is not a token at all. The daemon wires
// it to the API's tokens; "" is asked too, and is allowed only where the API allows no token.
type Authorize func(token string) (Access, bool)

// Options is what the page is built from. Promises, Forecast, Agents, Events and Authorize
// are required.
type Options struct {
	Promises  Promises
	Forecast  Forecast
	Agents    Agents
	Events    Events
	Authorize Authorize
	// Mask hides a number from a token that may not see it (phone.Mask).
	Mask func(string) string
	// KeptWindow is the window of the kept ratio (metrics.kept_ratio_window); a day when zero.
	KeptWindow time.Duration
	// Limit is the most open promises shown per queue; 200 when zero.
	Limit int
	// MaxStreams bounds the live pages followed at once, each holding a Redis connection;
	// 8 when zero.
	MaxStreams int
	Clock      clock.Clock
	Logger     *zap.Logger
}

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// Handler serves the page at / and everything it needs under /ui/.
type Handler struct {
	o       Options
	pages   *template.Template
	mux     *http.ServeMux
	streams chan struct{} // one token per live page followed
	// anonymousKey signs the form token where no token is configured (see formToken).
	anonymousKey []byte
}

// New returns the page's handler.
func New(o Options) (*Handler, error) {
	if o.Promises == nil || o.Forecast == nil || o.Agents == nil || o.Events == nil || o.Authorize == nil {
		return nil, errors.New("building the supervisor page: promises, forecast, agents, events and authorize are required")
	}
	if o.Mask == nil {
		return nil, errors.New("building the supervisor page: a number mask is required")
	}
	if o.KeptWindow == 0 {
		o.KeptWindow = 24 * time.Hour
	}
	if o.Limit == 0 {
		o.Limit = 200
	}
	if o.MaxStreams == 0 {
		o.MaxStreams = 8
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	pages, err := template.New("").Funcs(templateFuncs).ParseFS(templateFiles, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("building the supervisor page: its templates: %w", err)
	}
	key, err := randomBytes(32)
	if err != nil {
		return nil, fmt.Errorf("building the supervisor page: making its form key: %w", err)
	}
	h := &Handler{o: o, pages: pages, mux: http.NewServeMux(), anonymousKey: key,
		streams: make(chan struct{}, o.MaxStreams)}
	assets, err := fs.Sub(assetFiles, "assets")
	if err != nil {
		return nil, err
	}
	// A form post from another site is refused before it reaches a handler: by the browser's
	// Sec-Fetch-Site or, from an older one, by its Origin. SameSite=Strict and the per-session
	// form token stand behind it.
	posts := http.NewCrossOriginProtection()
	h.mux.Handle("GET /ui/assets/", http.StripPrefix("/ui/assets/", http.FileServerFS(assets)))
	h.mux.HandleFunc("GET /{$}", h.page)
	h.mux.HandleFunc("GET /ui/board", h.board)
	h.mux.HandleFunc("GET "+EventsPath, h.events)
	h.mux.Handle("POST /ui/login", posts.Handler(http.HandlerFunc(h.login)))
	h.mux.Handle("POST /ui/logout", posts.Handler(http.HandlerFunc(h.logout)))
	h.mux.Handle("POST /ui/promises/{queue}/{id}/cancel", posts.Handler(http.HandlerFunc(h.cancel)))
	return h, nil
}

// ServeHTTP serves the page and its parts with headers that keep a browser from running
// anything but the page's own script, from framing it, and from sending the login token on
// as a referrer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "+
		"img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}
