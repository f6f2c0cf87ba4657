package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// v1Prefix is where the admin API lives; its description is v1Prefix + "/openapi.json".
const v1Prefix = "/api/v1"

// EventsPath is the event stream's path: a request to it lasts as long as its client follows.
const EventsPath = v1Prefix + eventsRoute

const eventsRoute = "/events"

// Admin is the engine's admin operations as the API uses them (dialer.Admin).
type Admin interface {
	Make(ctx context.Context, scope, key string, r dialer.MakeRequest) (dialer.Made, error)
	Find(ctx context.Context, id string) (queue.Job, error)
	Cancel(ctx context.Context, id, detail string) (queue.Job, error)
	Reschedule(ctx context.Context, id string, notBefore, deadline time.Time, force bool, detail string) (queue.Job, time.Time, error)
	Page(ctx context.Context, queueName string, o queue.PageOptions) ([]queue.Job, queue.PagePos, error)
	Predictions(ctx context.Context, queueName string) (map[string]dialer.Prediction, error)
	Quote(ctx context.Context, queueName string, reason queue.Reason) (time.Time, error)
	Summaries(ctx context.Context) ([]dialer.QueueSummary, error)
	ExportCustomer(ctx context.Context, number string) (queue.CustomerRecords, error)
	EraseCustomer(ctx context.Context, number string) (queue.Erased, error)
}

// v1 serves the admin API.
type v1 struct {
	admin     Admin
	agents    Agents
	events    Events
	heartbeat time.Duration
	clk       clock.Clock
	log       *zap.Logger
}

// v1Routes registers the admin API: every route names the role it needs.
func v1Routes(mux *http.ServeMux, o Options) {
	h := &v1{admin: o.Admin, agents: o.Agents, events: o.Events, heartbeat: o.Heartbeat, clk: o.Clock, log: o.Logger}
	if h.heartbeat <= 0 {
		h.heartbeat = DefaultHeartbeat
	}
	mux.HandleFunc("GET "+v1Prefix+"/openapi.json", serveOpenAPI)
	route := func(pattern string, role config.Role, f func(http.ResponseWriter, *http.Request) error) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(method+" "+v1Prefix+path, func(w http.ResponseWriter, r *http.Request) {
			if !rolesOf(r).Has(role) {
				writeProblem(w, errForbidden)
				return
			}
			if err := f(w, r); err != nil {
				h.fail(w, r, err)
			}
		})
	}
	if o.Agents != nil {
		route("GET /agents", config.RoleRead, h.listAgents)
		for _, action := range []string{"login", "logout", "pause", "resume"} {
			route("POST /agents/{id}/"+action, config.RoleWrite, h.setPresence(action))
		}
	}
	if o.Events != nil {
		route("GET "+eventsRoute, config.RoleRead, h.streamEvents)
	}
	if o.Admin != nil {
		route("POST /promises", config.RoleWrite, h.makePromise)
		route("GET /promises", config.RoleRead, h.listPromises)
		route("GET /promises/{id}", config.RoleRead, h.getPromise)
		route("POST /promises/{id}/cancel", config.RoleWrite, h.cancelPromise)
		route("POST /promises/{id}/reschedule", config.RoleWrite, h.reschedulePromise)
		route("GET /queues", config.RoleRead, h.listQueues)
		route("GET /quote", config.RoleRead, h.quote)
		route("GET /customers/{number}", config.RolePII, h.exportCustomer)
		route("DELETE /customers/{number}", config.RoleWrite, h.eraseCustomer)
	}
}

// v1Unrouted answers a request under /api/v1 that no route takes as a problem, as every other
// error of the admin API: 404, or 405 with the methods the path takes in Allow (which the mux
// works out).
func v1Unrouted(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" || !strings.HasPrefix(r.URL.Path, v1Prefix+"/") {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeProblem(w, errNoMethod)
			return
		}
		writeProblem(w, errNoRoute)
	})
}

// statusRecorder keeps what a handler answers but its body.
type statusRecorder struct {
	header http.Header
	code   int
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusRecorder) WriteHeader(code int)        { s.code = code }

// rateLimitEnd is when the limit that refused err ends.
func rateLimitEnd(err error) (time.Time, bool) {
	var rl *queue.RateLimitedError
	if errors.As(err, &rl) && !rl.Until.IsZero() {
		return rl.Until, true
	}
	return time.Time{}, false
}

// formatSeconds is d in whole seconds, rounded up, as Retry-After wants it.
func formatSeconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// fail answers err as a problem; a rate limit says when to try again.
func (h *v1) fail(w http.ResponseWriter, r *http.Request, err error) {
	if until, ok := rateLimitEnd(err); ok {
		if s := until.Sub(h.clk.Now()); s > 0 {
			w.Header().Set("Retry-After", formatSeconds(s))
		}
	}
	if statusOf(err) >= 500 {
		// A number in the path may be written with spaces or dashes, which MaskText does not
		// take for one: the path value is masked whole.
		path := r.URL.Path
		if n := r.PathValue("number"); n != "" {
			path = strings.Replace(path, n, phone.Mask(n), 1)
		}
		h.log.Error("admin API request failed", zap.String("method", r.Method), zap.String("path", phone.MaskText(path)),
			zap.String("error", phone.MaskText(err.Error())))
	}
	writeProblem(w, err)
}

// mask shows a number as the caller's roles allow.
func mask(r *http.Request, number string) string {
	if rolesOf(r).Has(config.RolePII) {
		return number
	}
	return phone.Mask(number)
}
