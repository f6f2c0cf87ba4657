package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/api"
	"github.com/callbackd/callbackd/api/apitest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

type promise struct {
	ID, Queue, Number, State string
	Deadline                 time.Time
	NotBefore                time.Time `json:"not_before"`
	AtRiskFromStart          bool      `json:"at_risk_from_start"`
	ExternalRef              string    `json:"external_ref"`
	Prediction               *struct {
		Connect *time.Time
		AtRisk  bool `json:"at_risk"`
	}
	History []struct{ Result, Detail string }
}

type made struct {
	Promise  promise
	Merged   bool
	Replayed bool
	Quote    *time.Time
}

// later is a window that starts an hour from now on the rig's clock, so the promise waits and
// is not called back while the test looks at it.
func (r *rig) later() map[string]any {
	return map[string]any{"not_before": r.clk.Now().Add(time.Hour).UTC()}
}

func (r *rig) make(t *testing.T, body map[string]any) made {
	t.Helper()
	a := r.call("POST", "/promises", writer, body, nil)
	if a.Code != 201 {
		t.Fatalf("POST /promises %v = %d %s", body, a.Code, a.Body)
	}
	var m made
	a.decode(t, &m)
	return m
}

func TestV1TokensRolesAndMasking(t *testing.T) {
	r := newRig(t)
	m := r.make(t, map[string]any{"number": "+31201234501", "queue": "reception", "window": r.later()})
	for _, tc := range []struct {
		name, method, path, token string
		code                      int
		problem                   string
	}{
		{"no token", "GET", "/promises", "", 401, "urn:callbackd:problem:unauthorized"},
		{"a wrong token", "GET", "/promises", "guess-0123456789abcdef", 401, "urn:callbackd:problem:unauthorized"},
		{"read may list", "GET", "/promises", reader, 200, ""},
		{"read may not cancel", "POST", "/promises/" + m.Promise.ID + "/cancel", reader, 403, "urn:callbackd:problem:forbidden"},
		{"read may not pause", "POST", "/agents/ria/pause", reader, 403, "urn:callbackd:problem:forbidden"},
		{"write may not export a customer", "GET", "/customers/+31201234501", writer, 403, "urn:callbackd:problem:forbidden"},
		{"read may not filter by number", "GET", "/promises?number=%2B31201234501", reader, 403, "urn:callbackd:problem:forbidden"},
		{"the description is public", "GET", "/openapi.json", "", 200, ""},
	} {
		a := r.call(tc.method, tc.path, tc.token, nil, nil)
		if a.Code != tc.code {
			t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, a.Code, a.Body, tc.code)
			continue
		}
		if tc.problem != "" {
			if p := a.problem(t); p.Type != tc.problem || p.Status != tc.code {
				t.Errorf("%s: problem %+v, want type %s", tc.name, p, tc.problem)
			}
		}
		if tc.code == 401 && a.Header.Get("WWW-Authenticate") != `Bearer realm="callbackd"` {
			t.Errorf("%s: no Bearer challenge", tc.name)
		}
	}
	for _, tc := range []struct {
		token, want string
	}{{reader, phone.Mask("+31201234501")}, {writer, phone.Mask("+31201234501")}, {admin, "+31201234501"}} {
		var p promise
		r.call("GET", "/promises/"+m.Promise.ID, tc.token, nil, nil).decode(t, &p)
		if p.Number != tc.want {
			t.Errorf("token %s sees the number as %q, want %q", tc.token[:6], p.Number, tc.want)
		}
	}
}

// The token→roles mapping the supervisor page shares: constant-time over every token, the
// single http.token with every role.
func TestTokensMapATokenToItsRoles(t *testing.T) {
	tokens := api.NewTokens([]api.Token{
		{Name: "crm", Secret: "crm-0123456789abcdef", Roles: []config.Role{config.RoleRead, config.RoleWrite}},
		{Name: "page", Secret: "page-0123456789abcdef", Roles: []config.Role{config.RoleRead}},
	})
	for _, tc := range []struct {
		token, name string
		ok          bool
		read, write bool
	}{
		{"crm-0123456789abcdef", "crm", true, true, true},
		{"page-0123456789abcdef", "page", true, true, false},
		{"page-0123456789abcdeF", "", false, false, false},
		{"", "", false, false, false},
	} {
		roles, ok := tokens.Roles(tc.token)
		if ok != tc.ok || roles.Name != tc.name || roles.Has(config.RoleRead) != tc.read || roles.Has(config.RoleWrite) != tc.write || roles.Has(config.RolePII) {
			t.Errorf("Roles(%q) = %+v %v, want %s ok=%v read=%v write=%v", tc.token, roles, ok, tc.name, tc.ok, tc.read, tc.write)
		}
	}
}

func TestV1MakeAPromise(t *testing.T) {
	r := newRig(t)
	body := map[string]any{"number": "+31 20 123 4502", "queue": "reception", "window": r.later(), "external_ref": "CRM-7"}
	key := map[string][]string{"Idempotency-Key": {"form-submission-1"}}

	first := r.call("POST", "/promises", writer, body, key)
	var m made
	first.decode(t, &m)
	if first.Code != 201 || m.Merged || m.Replayed || m.Quote == nil || !m.Promise.Deadline.Equal(*m.Quote) ||
		m.Promise.ExternalRef != "CRM-7" || first.Header.Get("Location") != "/api/v1/promises/"+m.Promise.ID {
		t.Fatalf("first POST = %d %s", first.Code, first.Body)
	}
	// Reception promises an api callback in 4h of its (always open) hours, counted from the
	// not-before; the quote is never earlier than the policy.
	if floor := m.Promise.NotBefore.Add(4 * time.Hour); m.Promise.Deadline.Before(floor) {
		t.Errorf("deadline %s is before the policy's %s", m.Promise.Deadline, floor)
	}

	replay := r.call("POST", "/promises", writer, body, key)
	var again made
	replay.decode(t, &again)
	if replay.Code != 200 || !again.Replayed || again.Promise.ID != m.Promise.ID {
		t.Errorf("replay = %d %s, want 200 and promise %s", replay.Code, replay.Body, m.Promise.ID)
	}
	other := map[string]any{"number": "+31201234502", "queue": "reception", "note": "another body"}
	if a := r.call("POST", "/promises", writer, other, key); a.Code != 409 || a.problem(t).Type != "urn:callbackd:problem:idempotency-conflict" {
		t.Errorf("same key, another body = %d %s, want 409 idempotency-conflict", a.Code, a.Body)
	}
	// Without a key the same customer's second request is merged into the open promise.
	merged := r.call("POST", "/promises", writer, map[string]any{"number": "+31201234502", "queue": "reception"}, nil)
	var mm made
	merged.decode(t, &mm)
	if merged.Code != 200 || !mm.Merged || mm.Promise.ID != m.Promise.ID {
		t.Errorf("second request = %d %s, want 200 merged into %s", merged.Code, merged.Body, m.Promise.ID)
	}

	early := r.clk.Now().Add(30 * time.Minute).UTC()
	for _, tc := range []struct {
		name   string
		body   any
		header map[string][]string
		code   int
		kind   string
		fields []string
	}{
		{"deadline before the quote", map[string]any{"number": "+31201234503", "queue": "reception", "window": map[string]any{"deadline": early}},
			nil, 422, "deadline-before-quote", []string{"window.deadline"}},
		{"an unknown field", `{"number": "+31201234503", "queue": "reception", "colour": "red"}`, badRequest, 400, "malformed-request", []string{"colour"}},
		{"a number that is none", map[string]any{"number": "call me", "queue": "reception"}, nil, 422, "invalid-value", []string{"number"}},
		{"a number dialer.allow refuses", map[string]any{"number": "+442079460000", "queue": "reception"}, nil, 422, "not-allowed", []string{"number"}},
		{"an unknown queue", map[string]any{"number": "+31201234503", "queue": "sales"}, nil, 422, "invalid-value", []string{"queue"}},
		{"an unknown reason", map[string]any{"number": "+31201234503", "reason": "whim"}, badRequest, 422, "invalid-value", []string{"reason"}},
		{"no number", map[string]any{"queue": "reception"}, badRequest, 422, "invalid-value", []string{"number"}},
		{"a number as a number", `{"number": 31201234503}`, badRequest, 400, "malformed-request", []string{"number"}},
		{"not JSON", `{"number":`, badRequest, 400, "malformed-request", nil},
		{"a body too large", `{"note": "` + strings.Repeat("x", 70<<10) + `"}`, badRequest, 413, "body-too-large", nil},
		{"a key with spaces", map[string]any{"number": "+31201234503"}, map[string][]string{"Idempotency-Key": {"a b"}, "X-Test-Bad-Request": {"1"}}, 400, "malformed-request", []string{"Idempotency-Key"}},
	} {
		a := r.call("POST", "/promises", writer, tc.body, tc.header)
		if a.Code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, a.Code, a.Body, tc.code)
			continue
		}
		p := a.problem(t)
		if p.Type != "urn:callbackd:problem:"+tc.kind || fmt.Sprint(p.fields()) != fmt.Sprint(tc.fields) {
			t.Errorf("%s: problem %s naming %v, want %s naming %v", tc.name, p.Type, p.fields(), tc.kind, tc.fields)
		}
		if tc.kind == "deadline-before-quote" && (p.Quote == nil || !p.Quote.After(early)) {
			t.Errorf("%s: the problem's quote %v is not after the requested %s", tc.name, p.Quote, early)
		}
	}
	// force makes the early promise anyway, flagged at risk from the start.
	forced := r.make(t, map[string]any{"number": "+31201234503", "queue": "reception", "force": true,
		"window": map[string]any{"deadline": early}})
	if !forced.Promise.AtRiskFromStart || !forced.Promise.Deadline.Equal(early.Truncate(time.Millisecond)) {
		t.Errorf("forced promise = %+v, want the early deadline, at risk", forced.Promise)
	}
	// A refused request made nothing: the queue holds the two promises above.
	var page struct{ Promises []promise }
	r.call("GET", "/promises?queue=reception", reader, nil, nil).decode(t, &page)
	if len(page.Promises) != 2 {
		t.Errorf("reception holds %d promises, want 2: %+v", len(page.Promises), page.Promises)
	}
}

// The rate limits hold for the API as for the detector: a number's sixth request of the day
// (dialer.rate_limits.promises_per_number_per_day: 5) is refused, with when to try again.
func TestV1RateLimitsHoldForTheAPI(t *testing.T) {
	r := newRig(t)
	body := map[string]any{"number": "+31201234501", "queue": "reception", "window": r.later()}
	for i := range 5 {
		if a := r.call("POST", "/promises", writer, body, nil); a.Code != 201 && a.Code != 200 {
			t.Fatalf("request %d: %d %s", i+1, a.Code, a.Body)
		}
	}
	a := r.call("POST", "/promises", writer, body, nil)
	if a.Code != 429 || a.problem(t).Type != "urn:callbackd:problem:rate-limited" || a.Header.Get("Retry-After") == "" ||
		strings.Contains(a.Body, "+31201234501") {
		t.Errorf("the sixth request: %d %s (Retry-After %q), want 429 rate-limited, a Retry-After and the number masked",
			a.Code, a.Body, a.Header.Get("Retry-After"))
	}
}

func TestV1ListPagesEarliestDeadlineFirst(t *testing.T) {
	r := newRig(t)
	want := map[string]bool{}
	for i := range 7 {
		q := []string{"reception", "support"}[i%2]
		m := r.make(t, map[string]any{"number": fmt.Sprintf("+3120123450%d", i), "queue": q, "force": true,
			"window": map[string]any{"not_before": r.clk.Now().Add(time.Hour).UTC(), "deadline": r.clk.Now().Add(time.Duration(10-i) * time.Hour).UTC()}})
		want[m.Promise.ID] = true
	}
	var seen []promise
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		a := r.call("GET", "/promises?limit=3&state=pending&cursor="+cursor, reader, nil, nil)
		var page struct {
			Promises   []promise
			NextCursor string `json:"next_cursor"`
		}
		a.decode(t, &page)
		if a.Code != 200 || len(page.Promises) > 3 {
			t.Fatalf("page %d = %d %s", pages, a.Code, a.Body)
		}
		seen = append(seen, page.Promises...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != len(want) {
		t.Errorf("paged %d promises, want %d", len(seen), len(want))
	}
	for i, p := range seen {
		if !want[p.ID] {
			t.Errorf("paged %s, which was not made", p.ID)
		}
		if i > 0 && p.Deadline.Before(seen[i-1].Deadline) {
			t.Errorf("%s (deadline %s) after %s (deadline %s)", p.ID, p.Deadline, seen[i-1].ID, seen[i-1].Deadline)
		}
		if p.Queue == "reception" && p.Prediction == nil {
			t.Errorf("pending %s in reception, which has a free agent, has no prediction", p.ID)
		}
	}
	got := r.call("GET", "/promises/"+seen[0].ID, reader, nil, nil)
	var one promise
	got.decode(t, &one)
	if got.Code != 200 || one.ID != seen[0].ID || len(one.History) != 0 && one.History[0].Result == "" {
		t.Errorf("GET /promises/%s = %d %s", seen[0].ID, got.Code, got.Body)
	}
	for _, tc := range []struct {
		name, path string
		bad        bool
		code       int
		fields     []string
	}{
		{"a state that is none", "/promises?state=asleep", false, 400, []string{"state"}},
		{"a cursor not given", "/promises?cursor=bm9wZQ", false, 400, []string{"cursor"}},
		{"a limit too large", "/promises?limit=5000", true, 400, []string{"limit"}},
		{"an unknown parameter", "/promises?sort=name", false, 400, []string{"sort"}},
		{"an unknown queue", "/promises?queue=sales", false, 422, []string{"queue"}},
		{"no such promise", "/promises/01JZZZZZZZZZZZZZZZZZZZZZZZ", false, 404, nil},
		{"no promise id", "/promises/nope", false, 404, nil},
	} {
		var h map[string][]string
		if tc.bad {
			h = badRequest
		}
		a := r.call("GET", tc.path, reader, nil, h)
		if a.Code != tc.code || fmt.Sprint(a.problem(t).fields()) != fmt.Sprint(tc.fields) {
			t.Errorf("%s: %d %s, want %d naming %v", tc.name, a.Code, a.Body, tc.code, tc.fields)
		}
	}
}

func TestV1CancelAndReschedule(t *testing.T) {
	r := newRig(t)
	m := r.make(t, map[string]any{"number": "+31201234501", "queue": "reception", "window": r.later()})
	later := r.clk.Now().Add(6 * time.Hour).UTC()
	var moved struct {
		Promise promise
		Quote   *time.Time
	}
	a := r.call("POST", "/promises/"+m.Promise.ID+"/reschedule", writer, map[string]any{
		"window": map[string]any{"not_before": later, "deadline": later.Add(6 * time.Hour)}}, nil)
	a.decode(t, &moved)
	if a.Code != 200 || !moved.Promise.NotBefore.Equal(later.Truncate(time.Millisecond)) || moved.Quote == nil ||
		moved.Promise.History[len(moved.Promise.History)-1].Result != "rescheduled" {
		t.Errorf("reschedule = %d %s", a.Code, a.Body)
	}
	// With no deadline the new window ends at the honest quote from its not-before.
	a = r.call("POST", "/promises/"+m.Promise.ID+"/reschedule", writer, map[string]any{"window": map[string]any{"not_before": later}}, nil)
	a.decode(t, &moved)
	if a.Code != 200 || moved.Quote == nil || !moved.Promise.Deadline.Equal(*moved.Quote) || moved.Promise.Deadline.Before(later.Add(4*time.Hour)) {
		t.Errorf("reschedule to the quote = %d %s", a.Code, a.Body)
	}
	for _, tc := range []struct {
		name, path string
		body       any
		code       int
		kind       string
	}{
		{"a deadline before the quote", "/promises/" + m.Promise.ID + "/reschedule", map[string]any{"window": map[string]any{"deadline": r.clk.Now().Add(time.Minute).UTC()}}, 422, "deadline-before-quote"},
		{"cancel", "/promises/" + m.Promise.ID + "/cancel", map[string]any{"detail": "made by mistake"}, 200, ""},
		{"cancel again", "/promises/" + m.Promise.ID + "/cancel", nil, 409, "wrong-state"},
		{"reschedule a cancelled promise", "/promises/" + m.Promise.ID + "/reschedule", nil, 409, "wrong-state"},
		{"cancel what is not there", "/promises/01JZZZZZZZZZZZZZZZZZZZZZZZ/cancel", nil, 404, "not-found"},
	} {
		a := r.call("POST", tc.path, writer, tc.body, nil)
		if a.Code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, a.Code, a.Body, tc.code)
			continue
		}
		if tc.kind != "" && a.problem(t).Type != "urn:callbackd:problem:"+tc.kind {
			t.Errorf("%s: %s, want %s", tc.name, a.Body, tc.kind)
		}
	}
	var p promise
	r.call("GET", "/promises/"+m.Promise.ID, reader, nil, nil).decode(t, &p)
	if p.State != "cancelled" || p.History[len(p.History)-1].Detail != "made by mistake" {
		t.Errorf("after cancel: %+v", p)
	}
}

func TestV1QueuesAndQuote(t *testing.T) {
	r := newRig(t)
	// Bob's phone is not registered; with Anna paused nobody can keep a support promise.
	if a := r.call("POST", "/agents/anna/pause", writer, nil, nil); a.Code != 200 {
		t.Fatalf("pausing anna: %d %s", a.Code, a.Body)
	}
	r.make(t, map[string]any{"number": "+31201234501", "queue": "reception", "window": r.later()})
	var qs struct {
		Queues []struct {
			Name   string
			Open   map[string]int64
			AtRisk int `json:"at_risk"`
			Quotes map[string]time.Time
		}
	}
	a := r.call("GET", "/queues", reader, nil, nil)
	a.decode(t, &qs)
	if a.Code != 200 || len(qs.Queues) != 2 || qs.Queues[0].Name != "reception" || qs.Queues[0].Open["pending"] != 1 {
		t.Fatalf("GET /queues = %d %s", a.Code, a.Body)
	}
	// Reception has Ria: every reason it promises is quoted. Support has nobody on duty.
	if len(qs.Queues[0].Quotes) != len(queue.Reasons()) || len(qs.Queues[1].Quotes) != 0 {
		t.Errorf("quotes: reception %v, support %v", qs.Queues[0].Quotes, qs.Queues[1].Quotes)
	}
	var quote struct {
		Queue, Reason string
		Deadline      time.Time
	}
	a = r.call("GET", "/quote?queue=reception&reason=voicemail", reader, nil, nil)
	a.decode(t, &quote)
	if a.Code != 200 || quote.Reason != "voicemail" || quote.Deadline.Before(r.clk.Now().Add(4*time.Hour-time.Minute)) {
		t.Errorf("GET /quote = %d %s", a.Code, a.Body)
	}
	for _, tc := range []struct {
		name, path string
		bad        bool
		code       int
		kind       string
	}{
		{"no queue", "/quote", true, 400, "malformed-request"},
		{"an unknown queue", "/quote?queue=sales", false, 422, "invalid-value"},
		{"nobody to keep it", "/quote?queue=support", false, 422, "no-quote"},
	} {
		var h map[string][]string
		if tc.bad {
			h = badRequest
		}
		a := r.call("GET", tc.path, reader, nil, h)
		if a.Code != tc.code || a.problem(t).Type != "urn:callbackd:problem:"+tc.kind {
			t.Errorf("%s: %d %s, want %d %s", tc.name, a.Code, a.Body, tc.code, tc.kind)
		}
	}
}

// Pause and resume are presence kept in Redis, like login and logout: another daemon, or this
// one after a restart, reads them back. The unversioned routes do the same.
func TestV1AgentsPresenceIsPersisted(t *testing.T) {
	r := newRig(t)
	presences := queue.NewPresences(r.rdb, r.cfg.Redis.KeyPrefix, r.clk)
	for _, tc := range []struct {
		path     string
		code     int
		state    string
		presence queue.PresenceState
	}{
		{"/agents/ria/pause", 200, dialer.AgentPaused, queue.PresencePaused},
		{"/agents/ria/resume", 200, dialer.AgentFree, queue.PresenceLoggedIn},
		{"/agents/ria/logout", 200, dialer.AgentLoggedOut, queue.PresenceLoggedOut},
		{"/agents/ria/login", 200, dialer.AgentFree, queue.PresenceLoggedIn},
		{"/agents/nobody/pause", 404, "", ""},
	} {
		a := r.call("POST", tc.path, writer, nil, nil)
		if a.Code != tc.code {
			t.Errorf("%s = %d %s, want %d", tc.path, a.Code, a.Body, tc.code)
			continue
		}
		if tc.code != 200 {
			continue
		}
		var ag dialer.AgentView
		a.decode(t, &ag)
		got, err := presences.Get(context.Background(), []string{"ria"})
		if err != nil {
			t.Fatal(err)
		}
		if ag.State != tc.state || got["ria"].State != tc.presence || got["ria"].By != "api:writer" {
			t.Errorf("after %s: ria is %s, stored %+v, want %s and %s by api:writer", tc.path, ag.State, got["ria"], tc.state, tc.presence)
		}
	}
	// The unversioned route is kept for its clients, with the same effect; it is outside the
	// document, so it is called directly.
	if a := apitest.Call(t, r.srv, "POST", "/agents/ria/pause", writer); a.Code != 204 {
		t.Errorf("POST /agents/ria/pause = %d %s, want 204", a.Code, a.Body)
	}
	if got, err := presences.Get(context.Background(), []string{"ria"}); err != nil || got["ria"].State != queue.PresencePaused {
		t.Errorf("after the unversioned pause ria is stored as %+v (%v), want paused", got["ria"], err)
	}
	if a := apitest.Call(t, r.srv, "POST", "/agents/ria/resume", reader); a.Code != 403 {
		t.Errorf("the unversioned resume with a read token = %d, want 403", a.Code)
	}
}

func TestV1CustomerExportAndErasure(t *testing.T) {
	r := newRig(t)
	m := r.make(t, map[string]any{"number": "+31201234501", "queue": "reception", "window": r.later()})
	var rec queue.CustomerRecords
	a := r.call("GET", "/customers/+31201234501", admin, nil, nil)
	a.decode(t, &rec)
	if a.Code != 200 || rec.Number != "+31201234501" || len(rec.Queues) != 2 || len(rec.Queues[0].Jobs) != 1 {
		t.Fatalf("export = %d %s", a.Code, a.Body)
	}
	var erased queue.Erased
	a = r.call("DELETE", "/customers/%2B31201234501", writer, nil, nil)
	a.decode(t, &erased)
	if a.Code != 200 || erased.Number != phone.Mask("+31201234501") || strings.Contains(a.Body, "+31201234501") || !slices.Contains(erased.Queues[0].Jobs, m.Promise.ID) {
		t.Errorf("erase = %d %s", a.Code, a.Body)
	}
	if a := r.call("GET", "/promises/"+m.Promise.ID, reader, nil, nil); a.Code != 404 {
		t.Errorf("the erased promise: %d %s, want 404", a.Code, a.Body)
	}
	if a := r.call("DELETE", "/customers/nobody", writer, nil, nil); a.Code != 422 || fmt.Sprint(a.problem(t).fields()) != "[number]" {
		t.Errorf("erasing a non-number: %d %s, want 422 naming number", a.Code, a.Body)
	}
}

// The document's vocabularies are the code's: a state, reason or agent state added in Go
// must be added to the description too.
func TestOpenAPINamesTheCodesVocabulary(t *testing.T) {
	var d struct {
		Components struct {
			Schemas map[string]struct {
				Enum       []string
				Properties map[string]struct{ Enum []string }
			}
		}
	}
	if err := json.Unmarshal(api.OpenAPI, &d); err != nil {
		t.Fatal(err)
	}
	names := func(xs any) []string {
		var out []string
		switch v := xs.(type) {
		case []queue.State:
			for _, x := range v {
				out = append(out, string(x))
			}
		case []queue.Reason:
			for _, x := range v {
				out = append(out, string(x))
			}
		case []queue.PresenceState:
			for _, x := range v {
				out = append(out, string(x))
			}
		case []queue.EventType:
			for _, x := range v {
				out = append(out, string(x))
			}
		case []string:
			out = v
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name string
		doc  []string
		code any
	}{
		{"State", d.Components.Schemas["State"].Enum, queue.States()},
		{"Reason", d.Components.Schemas["Reason"].Enum, queue.Reasons()},
		{"EventType", d.Components.Schemas["EventType"].Enum, queue.EventTypes()},
		{"Agent.state", d.Components.Schemas["Agent"].Properties["state"].Enum, dialer.AgentStates()},
		{"Agent.presence", d.Components.Schemas["Agent"].Properties["presence"].Enum, queue.PresenceStates()},
	} {
		if got, want := names(tc.doc), names(tc.code); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: the document says %v, the code %v", tc.name, got, want)
		}
	}
}

// What an idempotency key leaves in Redis for a day names no customer: the request's
// fingerprint is keyed with the client's own key (which Redis never holds, only its hash), so
// the number cannot be found by hashing candidate numbers, even after the customer was erased.
func TestV1AnIdempotencyRecordCannotBeMatchedToANumber(t *testing.T) {
	r := newRig(t)
	body := map[string]any{"number": "+31201234509", "queue": "reception"}
	for _, k := range []string{"crm-form-a", "crm-form-b"} {
		if a := r.call("POST", "/promises", writer, body, map[string][]string{"Idempotency-Key": {k}}); a.Code != 201 && a.Code != 200 {
			t.Fatalf("POST with key %s = %d %s", k, a.Code, a.Body)
		}
	}
	keys, err := r.rdb.Keys(context.Background(), "callbackd:idempotency:*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("idempotency records %v (%v); want 2", keys, err)
	}
	var prints []string
	for _, k := range keys {
		rec, err := r.rdb.HGetAll(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for field, v := range rec {
			if strings.Contains(v, "1234509") {
				t.Errorf("record %s field %s holds the number: %q", k, field, v)
			}
		}
		prints = append(prints, rec["fingerprint"])
	}
	if prints[0] == "" || prints[0] == prints[1] {
		t.Errorf("fingerprints %q: the same request under two keys must not leave the same fingerprint (it could be matched by hashing numbers)", prints)
	}
	if a := r.call("DELETE", "/customers/+31201234509", writer, nil, nil); a.Code != 200 {
		t.Fatalf("erase = %d %s", a.Code, a.Body)
	}
	if a := r.call("POST", "/promises", writer, body, map[string][]string{"Idempotency-Key": {"crm-form-a"}}); a.Code != 404 {
		t.Errorf("a replay after the erase = %d %s; want 404: the promise it made is gone", a.Code, a.Body)
	}
}

// One promise per customer holds for promises made through the API too: a request for a
// number with an open promise in another queue joins it, as a detector request would.
func TestV1APromiseForACustomerOwedOneElsewhereJoinsIt(t *testing.T) {
	r := newRig(t)
	first := r.call("POST", "/promises", writer, map[string]any{"number": "+31201234517", "queue": "reception"}, nil)
	var a made
	first.decode(t, &a)
	if first.Code != 201 {
		t.Fatalf("first POST = %d %s", first.Code, first.Body)
	}
	second := r.call("POST", "/promises", writer, map[string]any{"number": "+31201234517", "queue": "support", "reason": "voicemail"}, nil)
	var b made
	second.decode(t, &b)
	if second.Code != 200 || !b.Merged || b.Promise.ID != a.Promise.ID || b.Promise.Queue != "reception" {
		t.Errorf("second POST = %d %s; want 200, merged into %s in reception", second.Code, second.Body, a.Promise.ID)
	}
}
