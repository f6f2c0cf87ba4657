package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/daemon/daemontest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callbackd/callbackd/api/apitest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
)

// Bad input of every kind is refused with a problem that names the field it is in, and
// changes nothing: the promise the test made stays the only one, and stays pending.
func TestV1BadInputNamesItsFieldAndChangesNothing(t *testing.T) {
	r := newRig(t)
	m := r.make(t, map[string]any{"number": "+31201234501", "queue": "reception", "window": r.later()})
	path := "/promises/" + m.Promise.ID
	for _, tc := range []struct {
		name, method, path, token string
		body                      any
		bad                       bool
		code                      int
		kind                      string
		fields                    []string
	}{
		{"a number filter that is no number", "GET", "/promises?number=nonsense", admin, nil, false, 422, "invalid-value", []string{"number"}},
		{"a number filter that is no number, one queue", "GET", "/promises?queue=reception&number=%2B31", admin, nil, false, 422, "invalid-value", []string{"number"}},
		{"a deadline that is no time", "POST", "/promises", writer,
			`{"number": "+31201234502", "queue": "reception", "window": {"deadline": "tomorrow"}}`, true, 400, "malformed-request", []string{"window.deadline"}},
		{"a not-before that is a date only", "POST", "/promises", writer,
			`{"number": "+31201234502", "queue": "reception", "window": {"not_before": "2026-12-02"}}`, true, 400, "malformed-request", []string{"window.not_before"}},
		{"a deadline that is a number", "POST", "/promises", writer,
			`{"number": "+31201234502", "queue": "reception", "window": {"deadline": 1764633600}}`, true, 400, "malformed-request", []string{"window.deadline"}},
		{"a rescheduled not-before that is no time", "POST", path + "/reschedule", writer,
			`{"window": {"not_before": "soon"}}`, true, 400, "malformed-request", []string{"window.not_before"}},
		{"a field in capitals", "POST", "/promises", writer,
			`{"NUMBER": "+31201234502", "queue": "reception"}`, true, 400, "malformed-request", []string{"NUMBER"}},
		{"force in another case", "POST", "/promises", writer,
			`{"number": "+31201234502", "queue": "reception", "Force": true}`, true, 400, "malformed-request", []string{"Force"}},
		{"a window field in another case", "POST", path + "/reschedule", writer,
			`{"window": {"Not_Before": "2026-12-03T08:00:00Z"}}`, true, 400, "malformed-request", []string{"window.Not_Before"}},
		{"a cancel detail in another case", "POST", path + "/cancel", writer,
			`{"Detail": "x"}`, true, 400, "malformed-request", []string{"Detail"}},
		{"a name too long", "POST", "/promises", writer,
			map[string]any{"number": "+31201234502", "queue": "reception", "name": strings.Repeat("n", 257)}, true, 422, "invalid-value", []string{"name"}},
		{"a note too long in bytes", "POST", "/promises", writer,
			map[string]any{"number": "+31201234502", "queue": "reception", "note": strings.Repeat("é", 129)}, false, 422, "invalid-value", []string{"note"}},
		{"an external ref with a line break", "POST", "/promises", writer,
			map[string]any{"number": "+31201234502", "queue": "reception", "external_ref": "CRM\n4711"}, false, 422, "invalid-value", []string{"external_ref"}},
		{"a cancel detail too long", "POST", path + "/cancel", writer,
			map[string]any{"detail": strings.Repeat("d", 257)}, true, 422, "invalid-value", []string{"detail"}},
		{"a reschedule detail too long", "POST", path + "/reschedule", writer,
			map[string]any{"detail": strings.Repeat("d", 257)}, true, 422, "invalid-value", []string{"detail"}},
		// Not JSON, but kin-openapi reads only the first value of a body, so the check passes it.
		{"an object and a stray brace", "POST", "/promises", writer,
			`{"number": "+31201234502", "queue": "reception"}}`, false, 400, "malformed-request", nil},
		{"an object and a stray bracket", "POST", path + "/cancel", writer,
			`{"detail": "x"}]`, false, 400, "malformed-request", nil},
	} {
		var h map[string][]string
		if tc.bad {
			h = badRequest
		}
		a := r.call(tc.method, tc.path, tc.token, tc.body, h)
		if a.Code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, a.Code, a.Body, tc.code)
			continue
		}
		p := a.problem(t)
		if p.Type != "urn:callbackd:problem:"+tc.kind || fmt.Sprint(p.fields()) != fmt.Sprint(tc.fields) {
			t.Errorf("%s: problem %s naming %v (%s), want %s naming %v", tc.name, p.Type, p.fields(), a.Body, tc.kind, tc.fields)
		}
	}
	var page struct{ Promises []promise }
	r.call("GET", "/promises", reader, nil, nil).decode(t, &page)
	if len(page.Promises) != 1 || page.Promises[0].ID != m.Promise.ID || page.Promises[0].State != "pending" ||
		!page.Promises[0].NotBefore.Equal(m.Promise.NotBefore) {
		t.Errorf("after the refused requests the promises are %+v, want only %s, pending, unmoved", page.Promises, m.Promise.ID)
	}
}

// A problem says what was wrong in the client's words, never in Go's.
func TestV1ProblemsSpeakJSONNotGo(t *testing.T) {
	r := newRig(t)
	for _, tc := range []struct {
		name, path string
		body       string
		field      string
		want       string
	}{
		{"a window that is a number", "/promises", `{"number": "+31201234502", "queue": "reception", "window": 5}`, "window", "must be an object, not number"},
		{"a window that is a string", "/promises", `{"number": "+31201234502", "queue": "reception", "window": "soon"}`, "window", "must be an object, not string"},
		{"a number that is a number", "/promises", `{"number": 31201234502}`, "number", "must be a string, not number"},
	} {
		a := r.call("POST", tc.path, writer, tc.body, badRequest)
		p := a.problem(t)
		if a.Code != 400 || len(p.Errors) != 1 || p.Errors[0].Field != tc.field || !strings.Contains(p.Errors[0].Detail, tc.want) ||
			strings.Contains(a.Body, "api.") {
			t.Errorf("%s: %d %s, want 400 naming %s: %q", tc.name, a.Code, a.Body, tc.field, tc.want)
		}
	}
}

// A failing request is logged with its path; a number in that path is masked whatever form
// the client wrote it in, as the daemon's own logger (log.mask_numbers: true) writes it.
func TestV1AFailedRequestLogsNoNumber(t *testing.T) {
	var out daemontest.Output
	log, err := daemon.NewLogger(config.Log{Level: "info", Format: "json", MaskNumbers: true}, &out)
	if err != nil {
		t.Fatal(err)
	}
	r := newRigLogging(t, log)
	r.redis.Stop() // every store operation now fails: the API answers 5xx and logs it
	for _, tc := range []struct {
		name, method, path, token string
		number                    string
	}{
		{"erase, spaces", "DELETE", "/customers/%2B31%2020%20123%204567", writer, "+31 20 123 4567"},
		{"export, dashes", "GET", "/customers/+31-20-123-4568", admin, "+31-20-123-4568"},
		{"export, dots and parentheses", "GET", "/customers/+31%20(20)%20123.45.69", admin, "+31 (20) 123.45.69"},
	} {
		before := len(out.String())
		a := r.call(tc.method, tc.path, tc.token, nil, nil)
		if a.Code < 500 {
			t.Errorf("%s: %d %s, want a 5xx with Redis down", tc.name, a.Code, a.Body)
			continue
		}
		var logged string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if logged = out.String()[before:]; strings.Contains(logged, "admin API request failed") {
				break
			}
		}
		if !strings.Contains(logged, "admin API request failed") {
			t.Errorf("%s: the failure was not logged: %s", tc.name, logged)
			continue
		}
		for _, line := range strings.Split(logged, "\n") {
			if strings.Contains(line, tc.number) || strings.Contains(onlyDigits(line), onlyDigits(tc.number)) {
				t.Errorf("%s: a log line carries the number %s: %s", tc.name, tc.number, line)
			}
		}
	}
}

func onlyDigits(s string) string {
	return strings.Map(func(c rune) rune {
		if c >= '0' && c <= '9' {
			return c
		}
		return -1
	}, s)
}

// Everything under /api/v1 answers errors as problems, a path or a method the API does not
// have too (outside the document, so called directly): 404, or 405 with what is allowed.
func TestV1UnknownRoutesAnswerProblems(t *testing.T) {
	r := newRig(t)
	for _, tc := range []struct {
		method, path string
		code         int
		kind, allow  string
	}{
		{"GET", "/api/v1/nothing", 404, "not-found", ""},
		{"POST", "/api/v1/promises/01JZZZZZZZZZZZZZZZZZZZZZZZ/erase", 404, "not-found", ""},
		{"PUT", "/api/v1/promises", 405, "method-not-allowed", "GET, HEAD, POST"},
		{"DELETE", "/api/v1/promises/01JZZZZZZZZZZZZZZZZZZZZZZZ", 405, "method-not-allowed", "GET, HEAD"},
		{"GET", "/api/v1/promises/01JZZZZZZZZZZZZZZZZZZZZZZZ/cancel", 405, "method-not-allowed", "POST"},
		{"POST", "/api/v1/customers/+31201234501", 405, "method-not-allowed", "DELETE, GET, HEAD"},
	} {
		a := apitest.Call(t, r.srv, tc.method, tc.path, admin)
		var p problemBody
		if a.Code != tc.code || a.Header.Get("Content-Type") != "application/problem+json" || a.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s = %d %s (Allow %q) %q, want %d as a problem, Allow %q", tc.method, tc.path, a.Code,
				a.Header.Get("Content-Type"), a.Header.Get("Allow"), a.Body, tc.code, tc.allow)
			continue
		}
		if err := json.Unmarshal([]byte(a.Body), &p); err != nil || p.Type != "urn:callbackd:problem:"+tc.kind || p.Status != tc.code {
			t.Errorf("%s %s: problem %s (%v), want %s", tc.method, tc.path, a.Body, err, tc.kind)
		}
	}
}

// A promise whose record in Redis cannot be read is left out of a page, alone: the others are
// answered, of its queue and of every queue, and the log names it.
func TestV1APageLeavesOutOnlyTheRecordItCannotRead(t *testing.T) {
	var out daemontest.Output
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&out), zap.InfoLevel))
	r := newRigLogging(t, log)
	good := r.make(t, map[string]any{"number": "+31201234511", "queue": "reception", "window": r.later()})
	bad := r.make(t, map[string]any{"number": "+31201234512", "queue": "reception", "window": r.later()})
	if err := r.rdb.HSet(context.Background(), "callbackd:{reception}:job:"+bad.Promise.ID, "reasons", "[voicemail").Err(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/promises?queue=reception", "/promises"} {
		var page struct{ Promises []promise }
		a := r.call("GET", path, reader, nil, nil)
		if a.Code != 200 {
			t.Fatalf("GET %s with a broken record: %d %s; want the page without it", path, a.Code, a.Body)
		}
		a.decode(t, &page)
		if len(page.Promises) != 1 || page.Promises[0].ID != good.Promise.ID {
			t.Errorf("GET %s = %+v; want only %s", path, page.Promises, good.Promise.ID)
		}
	}
	if !strings.Contains(out.String(), bad.Promise.ID) {
		t.Errorf("the log does not name the promise left out:\n%s", out.String())
	}
}
