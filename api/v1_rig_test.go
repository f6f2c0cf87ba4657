package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/api"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
)

// The tokens of the rig: one per combination of roles the tests need.
const (
	reader = "reader-0123456789abcdef" // read
	writer = "writer-0123456789abcdef" // read, write
	admin  = "admin-0123456789abcdef0" // read, write, pii
)

// rig is the whole daemon of the demo configuration — fake Asterisk, real redis-server, the
// real engine — with its HTTP surface on a real loopback listener, and the OpenAPI document
// every request and answer of the tests is checked against.
type rig struct {
	t      testing.TB
	srv    *httptest.Server
	d      *daemon.Daemon
	rdb    redis.UniversalClient
	pbx    *aritest.Server
	clk    *clock.Fake
	cfg    *config.Config
	router routers.Router
	redis  *redistest.Server
}

// newRig starts the rig; edit changes the configuration before the daemon is built.
func newRig(t testing.TB, edit ...func(*config.Config)) *rig {
	t.Helper()
	return newRigLogging(t, zap.NewNop(), edit...)
}

// newRigLogging is newRig with the daemon logging to log.
func newRigLogging(t testing.TB, log *zap.Logger, edit ...func(*config.Config)) *rig {
	t.Helper()
	pbx, clk := daemontest.StartPBX(t)
	// Ria (reception) answers: with her free, reception has an honest quote.
	pbx.SetEndpoint("PJSIP/1001", aritest.Answers(time.Second))
	cfg, err := config.Parse([]byte(demo.ConfigYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	cfg.HTTP.Tokens = []config.HTTPToken{
		{Name: "reader", Token: reader, Roles: []config.Role{config.RoleRead}},
		{Name: "writer", Token: writer, Roles: []config.Role{config.RoleRead, config.RoleWrite}},
		{Name: "admin", Token: admin, Roles: config.Roles()},
	}
	for _, e := range edit {
		e(cfg)
	}
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client()
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clk, Logger: log, Instance: "test", Listen: "-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(func() { srv.Close(); cancel(); <-ran })
	r := &rig{t: t, srv: srv, d: d, rdb: rdb, pbx: pbx, clk: clk, cfg: cfg, router: openAPIRouter(t, srv.URL), redis: rs}
	daemontest.WaitUntil(t, "ria free", func() bool {
		var list struct {
			Agents []struct{ ID, State string }
		}
		a := r.call("GET", "/agents", admin, nil, nil)
		_ = json.Unmarshal([]byte(a.Body), &list)
		for _, ag := range list.Agents {
			if ag.ID == "ria" && ag.State == "free" {
				return true
			}
		}
		return false
	})
	return r
}

var (
	docOnce sync.Once
	doc     *openapi3.T
	docErr  error
)

// openAPIRouter loads the checked-in document (kin-openapi loads and validates OpenAPI 3.1,
// and validates bodies with JSON Schema 2020-12 when the document says 3.1) and routes requests
// to srvURL by it.
func openAPIRouter(t testing.TB, srvURL string) routers.Router {
	t.Helper()
	docOnce.Do(func() {
		// kin-openapi decodes JSON bodies itself; an event stream it is taught to take as
		// text, which the document describes it as.
		openapi3filter.RegisterBodyDecoder("text/event-stream", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(body)
			return string(b), err
		})
		loader := openapi3.NewLoader()
		doc, docErr = loader.LoadFromData(api.OpenAPI)
		if docErr == nil {
			docErr = doc.Validate(context.Background())
		}
	})
	if docErr != nil {
		t.Fatalf("the OpenAPI document does not load: %v", docErr)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("the OpenAPI document is %s, not 3.1", doc.OpenAPI)
	}
	own := *doc
	own.Servers = openapi3.Servers{{URL: srvURL + "/api/v1"}}
	router, err := gorillamux.NewRouter(&own)
	if err != nil {
		t.Fatal(err)
	}
	return router
}

type answer struct {
	Code   int
	Header http.Header
	Body   string
}

// decode reads the answer's JSON into v.
func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.Body), v); err != nil {
		t.Fatalf("answer %d %q: %v", a.Code, a.Body, err)
	}
}

// problem is the answer as an RFC 9457 problem.
func (a answer) problem(t *testing.T) problemBody {
	t.Helper()
	if ct := a.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("answer %d is %s, not a problem: %s", a.Code, ct, a.Body)
	}
	var p problemBody
	a.decode(t, &p)
	return p
}

type problemBody struct {
	Type   string
	Title  string
	Status int
	Detail string
	Errors []struct{ Field, Detail string }
	Quote  *time.Time
}

// fields are the fields the problem names.
func (p problemBody) fields() []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}

// badRequest marks a request the document itself refuses: the check then insists that it
// does, and still checks the answer.
var badRequest = http.Header{"X-Test-Bad-Request": {"1"}}

// call sends method /api/v1+path with token and body (nil: none; a string is sent as it is,
// anything else as JSON), checking the request and the answer against the OpenAPI document.
func (r *rig) call(method, path, token string, body any, header http.Header) answer {
	r.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			r.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, r.srv.URL+"/api/v1"+path, bytes.NewReader(raw))
	if err != nil {
		r.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	bad := header.Get("X-Test-Bad-Request") != ""
	for k, vs := range header {
		if k != "X-Test-Bad-Request" {
			req.Header[k] = vs
		}
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		r.t.Fatal(err)
	}
	a := answer{resp.StatusCode, resp.Header, string(got)}
	r.check(req, raw, a, bad)
	return a
}

// check validates one exchange against the document: the request (or, for a bad one, that the
// document refuses it) and the answer, whose status must be one the operation lists or its
// default problem.
func (r *rig) check(req *http.Request, raw []byte, a answer, bad bool) {
	r.t.Helper()
	req = req.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(raw))
	req.URL.Host = strings.TrimPrefix(r.srv.URL, "http://") // a test's own server serves the same API
	route, params, err := r.router.FindRoute(req)
	if err != nil {
		r.t.Errorf("OpenAPI: %s %s is not in the document: %v", req.Method, req.URL.Path, err)
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	err = openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case bad && err == nil:
		r.t.Errorf("OpenAPI: %s %s %s is a bad request the document accepts", req.Method, req.URL, raw)
	case !bad && err != nil:
		r.t.Errorf("OpenAPI: request %s %s %s: %v", req.Method, req.URL, raw, err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: a.Code, Header: a.Header, Options: opts}
	out.SetBodyBytes([]byte(a.Body))
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		r.t.Errorf("OpenAPI: answer to %s %s: %d %s: %v", req.Method, req.URL, a.Code, strings.TrimSpace(a.Body), err)
	}
}
