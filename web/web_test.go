package web_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
	"github.com/callbackd/callbackd/web"
)

// The tokens of these tests and what each may do.
var tokens = map[string]web.Access{
	"reader-token": {Name: "reader", Read: true},
	"writer-token": {Name: "writer", Read: true, Write: true},
	"pii-token":    {Name: "pii", Read: true, Numbers: true},
	"blind-token":  {Name: "blind"}, // a token without the read role
}

func authorize(token string) (web.Access, bool) {
	a, ok := tokens[token]
	return a, ok
}

// page is the supervisor page on the demo's queues and agents, on a real store in a real
// redis-server; no agent has registered a phone, so every promise is at risk.
type page struct {
	srv   *httptest.Server
	store *queue.Store
	clk   *clock.Fake
	redis *redistest.Server
}

func newPage(t testing.TB) *page { return newPageShowing(t, 0) }

// newPageShowing is newPage showing at most limit promises per queue (0: the default).
func newPageShowing(t testing.TB, limit int) *page {
	t.Helper()
	cfg, err := config.Parse([]byte(demo.ConfigYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	redisServer := redistest.Start(t, redistest.Options{})
	rdb := redisServer.Client()
	store, err := daemon.NewStore(cfg, rdb, clk)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	policy := dialer.PolicyFrom(cfg)
	pool := dialer.NewPool(policy.Agents, clk, nil)
	h, err := web.New(web.Options{Promises: store, Forecast: dialer.NewForecaster(policy, store, pool, nil), Agents: pool,
		Events: store, Authorize: authorize, Mask: phone.Mask, KeptWindow: time.Hour, Clock: clk, Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &page{srv: srv, store: store, clk: clk, redis: redisServer}
}

func (p *page) promise(t testing.TB, queueName, number string, deadline time.Duration) queue.Job {
	t.Helper()
	now := p.clk.Now()
	j, _, err := p.store.Enqueue(context.Background(), queue.Request{Queue: queueName, Number: number,
		Reason: queue.ReasonVoicemail, Target: "2001", Deadline: now.Add(deadline), NotBefore: now, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// browser is a client that keeps cookies and does not follow redirects, so a test sees each
// answer.
func (p *page) browser(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signedIn is a browser signed in with token.
func (p *page) signedIn(t testing.TB, token string) *http.Client {
	t.Helper()
	c := p.browser(t)
	if code, _, _ := p.get(t, c, "/?token="+url.QueryEscape(token)); code != http.StatusSeeOther {
		t.Fatalf("signing in with %s: %d; want 303", token, code)
	}
	return c
}

func (p *page) get(t testing.TB, c *http.Client, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := c.Get(p.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// post sends a form as the page's own form would, from the page's origin unless origin says
// otherwise.
func (p *page) post(t *testing.T, c *http.Client, path string, form url.Values, origin string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin == "" {
		origin = p.srv.URL
	}
	req.Header.Set("Origin", origin)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

var formTokenRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// formToken is the form token of the page c is shown.
func (p *page) formToken(t *testing.T, c *http.Client) string {
	t.Helper()
	_, _, body := p.get(t, c, "/")
	m := formTokenRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the page has no form token:\n%s", body)
	}
	return m[1]
}

func TestSigningIn(t *testing.T) {
	p := newPage(t)
	for _, tc := range []struct {
		name     string
		do       func(c *http.Client) (int, http.Header, string)
		wantCode int
		signedIn bool
	}{
		{"a token in the address signs in and is taken out of it",
			func(c *http.Client) (int, http.Header, string) { return p.get(t, c, "/?token=writer-token") }, http.StatusSeeOther, true},
		{"the login form signs in",
			func(c *http.Client) (int, http.Header, string) {
				return p.post(t, c, "/ui/login", url.Values{"token": {"reader-token"}}, "")
			}, http.StatusSeeOther, true},
		{"a wrong token in the address is refused",
			func(c *http.Client) (int, http.Header, string) { return p.get(t, c, "/?token=guess") }, http.StatusUnauthorized, false},
		{"a wrong token in the form is refused",
			func(c *http.Client) (int, http.Header, string) {
				return p.post(t, c, "/ui/login", url.Values{"token": {"guess"}}, "")
			}, http.StatusUnauthorized, false},
		{"a token that may not read is refused",
			func(c *http.Client) (int, http.Header, string) { return p.get(t, c, "/?token=blind-token") }, http.StatusUnauthorized, false},
		{"a login form posted from another site is refused",
			func(c *http.Client) (int, http.Header, string) {
				return p.post(t, c, "/ui/login", url.Values{"token": {"writer-token"}}, "https://evil.example")
			}, http.StatusForbidden, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := p.browser(t)
			code, hd, body := tc.do(c)
			if code != tc.wantCode {
				t.Fatalf("answer %d %q; want %d", code, body, tc.wantCode)
			}
			if tc.signedIn {
				if loc := hd.Get("Location"); loc != "/" {
					t.Errorf("sent to %q; want / (without the token)", loc)
				}
				cookie := hd.Get("Set-Cookie")
				for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
					if !strings.Contains(cookie, attr) {
						t.Errorf("session cookie %q lacks %s", cookie, attr)
					}
				}
			}
			_, _, page := p.get(t, c, "/")
			if got := strings.Contains(page, "Signed in as"); got != tc.signedIn {
				t.Errorf("signed in afterwards: %v; want %v:\n%s", got, tc.signedIn, page)
			}
			if !tc.signedIn && !strings.Contains(page, `<label for="token">`) {
				t.Errorf("no login form for a browser that is not signed in:\n%s", page)
			}
		})
	}
}

func TestThePageShowsOpenPromisesEarliestDeadlineFirst(t *testing.T) {
	p := newPage(t)
	late := p.promise(t, "support", "+31201234571", 2*time.Hour)
	soon := p.promise(t, "reception", "+31201234572", 30*time.Minute)
	for _, tc := range []struct {
		token       string
		wantNumbers bool
		wantCancel  bool
	}{
		{"reader-token", false, false},
		{"writer-token", false, true},
		{"pii-token", true, false},
	} {
		t.Run(tc.token, func(t *testing.T) {
			c := p.signedIn(t, tc.token)
			code, _, body := p.get(t, c, "/")
			if code != http.StatusOK {
				t.Fatalf("GET /: %d %q", code, body)
			}
			first, second := strings.Index(body, soon.ID), strings.Index(body, late.ID)
			if first < 0 || second < 0 || first > second {
				t.Errorf("promises not shown earliest deadline first (at %d and %d):\n%s", first, second, body)
			}
			for _, n := range []string{soon.Number, late.Number} {
				shown, masked := strings.Contains(body, inHTML(n)), strings.Contains(body, inHTML(phone.Mask(n)))
				if shown != tc.wantNumbers || masked == tc.wantNumbers {
					t.Errorf("number %s shown %v, masked %v; want shown %v", phone.Mask(n), shown, masked, tc.wantNumbers)
				}
			}
			if got := strings.Contains(body, `class="cancel"`); got != tc.wantCancel {
				t.Errorf("cancel buttons shown: %v; want %v", got, tc.wantCancel)
			}
			for _, want := range []string{
				"30m 00s", "2h 00m", // time left
				`<strong class="badge">At risk</strong> no agent in sight`, // nobody has a phone
				`<th scope="row">reception</th>`, `data-label="At risk" class="risky">1<`,
				`<th scope="row">Ria (reception)</th>`, `data-label="State" class="state">offline<`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
		})
	}
}

func TestCancellingAPromise(t *testing.T) {
	p := newPage(t)
	j := p.promise(t, "support", "+31201234581", time.Hour)
	path := "/ui/promises/support/" + j.ID + "/cancel"
	writer, reader, stranger := p.signedIn(t, "writer-token"), p.signedIn(t, "reader-token"), p.browser(t)
	writerForm, readerForm := p.formToken(t, writer), p.formToken(t, reader)
	otherSignIn := p.formToken(t, p.signedIn(t, "writer-token"))
	if otherSignIn == writerForm {
		t.Errorf("two sign-ins with one token have the same form token %s; want one each", writerForm)
	}

	for _, tc := range []struct {
		name     string
		c        *http.Client
		form     url.Values
		origin   string
		wantCode int
	}{
		{"without the form token", writer, url.Values{}, "", http.StatusForbidden},
		{"with another session's form token", writer, url.Values{"csrf": {readerForm}}, "", http.StatusForbidden},
		{"with the form token of another sign-in with the same token", writer, url.Values{"csrf": {otherSignIn}}, "", http.StatusForbidden},
		{"from another site", writer, url.Values{"csrf": {writerForm}}, "https://evil.example", http.StatusForbidden},
		{"by a token that may only read", reader, url.Values{"csrf": {readerForm}}, "", http.StatusForbidden},
		{"by a browser that is not signed in", stranger, url.Values{"csrf": {writerForm}}, "", http.StatusUnauthorized},
	} {
		t.Run("refused "+tc.name, func(t *testing.T) {
			if code, _, body := p.post(t, tc.c, path, tc.form, tc.origin); code != tc.wantCode {
				t.Errorf("answer %d %q; want %d", code, body, tc.wantCode)
			}
			if got, err := p.store.Get(context.Background(), j.Ref()); err != nil || got.State != queue.StatePending {
				t.Errorf("promise after a refused cancel: %v %v; want it still pending", got.State, err)
			}
		})
	}

	code, hd, body := p.post(t, writer, path, url.Values{"csrf": {writerForm}}, "")
	if code != http.StatusSeeOther {
		t.Fatalf("cancel: %d %q; want 303", code, body)
	}
	got, err := p.store.Get(context.Background(), j.Ref())
	if err != nil || got.State != queue.StateCancelled {
		t.Fatalf("promise after cancel: %v %v; want cancelled", got.State, err)
	}
	if !historyHas(got, "cancelled by writer on the supervisor page") {
		t.Errorf("history %+v does not name who cancelled", got.History)
	}
	_, _, page := p.get(t, writer, hd.Get("Location"))
	if !strings.Contains(page, "Promise support/"+j.ID+" cancelled.") || strings.Contains(page, `id="promise-support-`+j.ID) {
		t.Errorf("page after cancel: no notice, or the promise still listed:\n%s", page)
	}

	// Twice: nothing changes, and the page says so.
	code, hd, _ = p.post(t, writer, path, url.Values{"csrf": {writerForm}}, "")
	_, _, page = p.get(t, writer, hd.Get("Location"))
	if code != http.StatusSeeOther || !strings.Contains(page, "had already finished; nothing changed") {
		t.Errorf("second cancel: %d, page without the notice that nothing changed", code)
	}
	if _, _, page := p.get(t, writer, "/?cancelled="+url.QueryEscape("support/call +31 20 555 0199 now")); strings.Contains(page, "555") {
		t.Errorf("the page shows a notice made up in its address:\n%s", page)
	}
	for _, path := range []string{"/ui/promises/support/01KB0000000000000000000000/cancel",
		"/ui/promises/support/not-an-id/cancel", "/ui/promises/nosuchqueue/" + j.ID + "/cancel"} {
		if code, _, body := p.post(t, writer, path, url.Values{"csrf": {writerForm}}, ""); code != http.StatusNotFound {
			t.Errorf("POST %s: %d %q; want 404", path, code, body)
		}
	}
}

// inHTML is s as html/template writes it in text: a number's '+' is escaped.
func inHTML(s string) string { return strings.ReplaceAll(s, "+", "&#43;") }

func historyHas(j queue.Job, detail string) bool {
	for _, a := range j.History {
		if strings.Contains(a.Detail, detail) {
			return true
		}
	}
	return false
}

// Everything the page loads comes from the daemon, and the browser is told to run nothing else.
func TestThePageFetchesNothingFromElsewhere(t *testing.T) {
	p := newPage(t)
	p.promise(t, "support", "+31201234591", time.Hour)
	c := p.signedIn(t, "writer-token")
	external := regexp.MustCompile(`(?i)(src|href|url)\s*[=(]\s*["']?(https?:)?//`)
	for _, path := range []string{"/", "/ui/board", "/ui/assets/page.css", "/ui/assets/page.js"} {
		code, hd, body := p.get(t, c, path)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d", path, code)
			continue
		}
		if m := external.FindString(body); m != "" {
			t.Errorf("GET %s refers to another host: %s", path, m)
		}
		if csp := hd.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if hd.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: Referrer-Policy %q; want no-referrer (a token may be in the address)", path, hd.Get("Referrer-Policy"))
		}
	}
	for path, want := range map[string]string{"/ui/board": http.StatusText(http.StatusUnauthorized), "/ui/events": http.StatusText(http.StatusUnauthorized)} {
		if code, _, _ := p.get(t, p.browser(t), path); http.StatusText(code) != want {
			t.Errorf("GET %s without signing in: %d; want %s", path, code, want)
		}
	}
}

// sseEvent is one event of the page's stream.
type sseEvent struct{ id, name, data string }

// stream opens the page's event stream for c, with lastID as Last-Event-ID unless "", and
// returns its events as they come.
func (p *page) stream(t *testing.T, c *http.Client, lastID string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.srv.URL+"/ui/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /ui/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.name != "" {
					out <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				e.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				e.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				e.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out
}

func next(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return e
	case <-time.After(20 * time.Second): // only a guard against a hang
		t.Fatal("no event came")
	}
	return sseEvent{}
}

func TestTheEventStreamRelaysPromiseEventsResumably(t *testing.T) {
	p := newPage(t)
	reader := p.signedIn(t, "reader-token")
	events := p.stream(t, reader, "")
	first := p.promise(t, "support", "+31201234601", time.Hour)
	made := next(t, events)
	if made.name != "promise" || !strings.Contains(made.data, `"type":"made"`) || !strings.Contains(made.data, first.ID) {
		t.Fatalf("first event %+v; want promise %s made", made, first.ID)
	}
	if strings.Contains(made.data, first.Number) || !strings.Contains(made.data, phone.Mask(first.Number)) {
		t.Errorf("a reader's event %s does not mask the number", made.data)
	}

	// A browser that reconnects with the id it last got misses nothing and gets nothing twice.
	second := p.promise(t, "reception", "+31201234602", time.Hour)
	resumed := next(t, p.stream(t, p.signedIn(t, "pii-token"), made.id))
	if !strings.Contains(resumed.data, second.ID) || !strings.Contains(resumed.data, second.Number) {
		t.Errorf("resumed after %s: %+v; want promise %s made, its number shown to a pii token", made.id, resumed, second.ID)
	}
}

// The queue table counts what finished in the window: a promise kept and one that ran out of
// attempts make half kept; a claimed one shows who calls it.
func TestTheQueueTableShowsTheKeptRatioAndWhoCalls(t *testing.T) {
	p := newPage(t)
	ctx := context.Background()
	for _, tc := range []struct {
		number  string
		outcome queue.State
	}{{"+31201234611", queue.StateKept}, {"+31201234612", queue.StateUnreachable}, {"+31201234613", ""}} {
		p.promise(t, "support", tc.number, time.Hour)
		j, err := p.store.Claim(ctx, "support", queue.ClaimOptions{Worker: "daemon-1/bob", Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if tc.outcome == "" {
			continue // left dialing
		}
		if _, err := p.store.MarkDialled(ctx, j.Ref(), j.Lease.Token); err != nil {
			t.Fatal(err)
		}
		if tc.outcome == queue.StateKept {
			if _, err := p.store.MarkConnected(ctx, j.Ref(), j.Lease.Token, p.clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.store.Complete(ctx, j.Ref(), j.Lease.Token, tc.outcome, "test"); err != nil {
			t.Fatal(err)
		}
	}
	_, _, body := p.get(t, p.signedIn(t, "reader-token"), "/ui/board")
	for _, want := range []string{
		`<td data-label="Kept">50 % of 2 finished</td>`,
		`promises kept over the last hour`,
		`class="state">dialing (bob)</td>`,
		`being called back`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("board lacks %s:\n%s", want, body)
		}
	}
}

// A long queue shows its most urgent promises, and says how many it has in all.
func TestALongQueueSaysHowManyItHolds(t *testing.T) {
	p := newPageShowing(t, 2)
	var numbers []string
	for i := range 3 {
		j := p.promise(t, "support", fmt.Sprintf("+3120123462%d", i), time.Duration(i+1)*time.Hour)
		numbers = append(numbers, j.Number)
	}
	_, _, body := p.get(t, p.signedIn(t, "pii-token"), "/ui/board")
	if !strings.Contains(body, `<td data-label="Open">3 (the 2 most urgent shown)</td>`) {
		t.Errorf("the support queue's row does not say 2 of 3 are shown:\n%s", body)
	}
	for i, n := range numbers {
		if shown := strings.Contains(body, inHTML(n)); shown != (i < 2) {
			t.Errorf("promise %d (deadline in %dh) shown %v; want only the two most urgent", i, i+1, shown)
		}
	}
}

// With Redis down the page says what it could not read, and does not claim what it does not
// know: not that there are no open promises.
func TestWithRedisDownThePageSaysWhatItCouldNotRead(t *testing.T) {
	p := newPage(t)
	p.promise(t, "support", "+31201234631", time.Hour)
	c := p.signedIn(t, "reader-token")
	p.redis.Stop()
	for _, path := range []string{"/", "/ui/board"} {
		code, _, body := p.get(t, c, path)
		if code != http.StatusOK {
			t.Fatalf("GET %s with Redis down: %d %q; want the page with its problems", path, code, body)
		}
		for _, want := range []string{`role="alert">Could not read the open promises of queue support.<`,
			`role="alert">Could not read the event stream (the page does not update by itself).<`} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s with Redis down lacks %s:\n%s", path, want, body)
			}
		}
		if strings.Contains(body, "No open promises.") {
			t.Errorf("GET %s with Redis down says there are no open promises, which it could not read:\n%s", path, body)
		}
	}
}

// A browser that reconnects to the event stream while Redis is down is told the stream cannot
// be read (and the page says it is not live), not answered a stream that ends at once, which
// would mark the page live for a moment on every retry.
func TestTheEventStreamIsRefusedWhileRedisIsDown(t *testing.T) {
	p := newPage(t)
	reader := p.signedIn(t, "reader-token")
	p.promise(t, "support", "+31201234651", time.Hour)
	made := next(t, p.stream(t, reader, "reception=0-0,support=0-0"))
	p.redis.Stop()
	for _, from := range []string{made.id, ""} {
		req, err := http.NewRequest(http.MethodGet, p.srv.URL+"/ui/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		if from != "" {
			req.Header.Set("Last-Event-ID", from)
		}
		resp, err := reader.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET /ui/events (Last-Event-ID %q) with Redis down: %d %q; want 503", from, resp.StatusCode, body)
		}
	}
}

// A promise whose record in Redis is broken is left out of the page, which says so, and the
// queue's other promises are shown all the same.
func TestABrokenRecordHidesNoOtherPromise(t *testing.T) {
	p := newPage(t)
	good := p.promise(t, "support", "+31201234641", time.Hour)
	bad := p.promise(t, "support", "+31201234642", 2*time.Hour)
	if err := p.redis.Client().HSet(context.Background(), "callbackd:{support}:job:"+bad.ID, "deadline", "soon").Err(); err != nil {
		t.Fatal(err)
	}
	_, _, body := p.get(t, p.signedIn(t, "reader-token"), "/")
	if !strings.Contains(body, good.ID) {
		t.Errorf("the page does not show the promise next to a broken one:\n%s", body)
	}
	if strings.Contains(body, bad.ID) {
		t.Errorf("the page shows the broken promise %s:\n%s", bad.ID, body)
	}
	if want := `role="alert">Could not read some open promises of queue support (left out).<`; !strings.Contains(body, want) {
		t.Errorf("the page lacks %s:\n%s", want, body)
	}
}
