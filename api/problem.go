package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/netcause"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// Errors of the HTTP layer itself; statusOf maps them with the engine's.
var (
	errMalformed    = errors.New("malformed request")
	errTooLarge     = errors.New("request body too large")
	errUnauthorized = errors.New("missing or wrong bearer token (http.token, http.tokens)")
	errForbidden    = errors.New("the token lacks the role this needs")
	errNoRoute      = errors.New("the admin API has no such path (see /api/v1/openapi.json)")
	errNoMethod     = errors.New("the path does not take this method (see the Allow header)")
)

// maxBody bounds a request body: the largest request, a promise, is well under a kilobyte.
const maxBody = 64 << 10

// problemTypes names each kind of problem (RFC 9457 "type"), by the error it is.
var problemTypes = []struct {
	err   error
	slug  string
	title string
}{
	{errMalformed, "malformed-request", "The request is malformed"},
	{errTooLarge, "body-too-large", "The request body is too large"},
	{errUnauthorized, "unauthorized", "Missing or wrong bearer token"},
	{errForbidden, "forbidden", "The token lacks the role this needs"},
	{errNoRoute, "not-found", "Not found"},
	{errNoMethod, "method-not-allowed", "Method not allowed"},
	{queue.ErrIdempotencyConflict, "idempotency-conflict", "The idempotency key was used for another request"},
	{dialer.ErrDeadlineBeforeQuote, "deadline-before-quote", "The deadline is earlier than can be kept"},
	{dialer.ErrNoQuote, "no-quote", "No deadline can be kept"},
	{queue.ErrRateLimited, "rate-limited", "Rate limit reached"},
	{dialer.ErrUnknownAgent, "not-found", "Not found"},
	{queue.ErrNotFound, "not-found", "Not found"},
	{queue.ErrWrongState, "wrong-state", "The promise is in the wrong state for this"},
	{queue.ErrUnknownQueue, "invalid-value", "A value is invalid"},
	{queue.ErrInvalidQueue, "invalid-value", "A value is invalid"},
	{queue.ErrInvalid, "invalid-value", "A value is invalid"},
	{phone.ErrInvalid, "invalid-value", "A value is invalid"},
}

// statusOf is the one place an error becomes an HTTP status, so every route answers the
// same failure the same way.
func statusOf(err error) int {
	var refused *dialer.RefusedError
	switch {
	case errors.Is(err, errMalformed):
		return http.StatusBadRequest
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	case errors.Is(err, dialer.ErrUnknownAgent), errors.Is(err, queue.ErrNotFound), errors.Is(err, errNoRoute):
		return http.StatusNotFound
	case errors.Is(err, errNoMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, queue.ErrIdempotencyConflict), errors.Is(err, queue.ErrWrongState):
		return http.StatusConflict
	case errors.Is(err, queue.ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, dialer.ErrDeadlineBeforeQuote), errors.Is(err, dialer.ErrNoQuote),
		errors.As(err, &refused), errors.Is(err, queue.ErrInvalid), errors.Is(err, queue.ErrUnknownQueue),
		errors.Is(err, queue.ErrInvalidQueue), errors.Is(err, phone.ErrInvalid):
		return http.StatusUnprocessableEntity
	case netcause.Of(err) != netcause.Unknown:
		return http.StatusServiceUnavailable // Redis cannot be reached: try again
	default:
		return http.StatusInternalServerError
	}
}

// problem is an RFC 9457 problem detail.
type problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Errors []fieldProblem `json:"errors,omitempty"`
	// Quote is the earliest deadline that can be kept, for deadline-before-quote.
	Quote *time.Time `json:"quote,omitempty"`
}

type fieldProblem struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// problemOf describes err. Details pass through phone.MaskText: an error may quote the number.
func problemOf(err error) problem {
	p := problem{Type: "about:blank", Status: statusOf(err), Detail: phone.MaskText(err.Error())}
	p.Title = http.StatusText(p.Status)
	for _, t := range problemTypes {
		if errors.Is(err, t.err) {
			p.Type, p.Title = "urn:callbackd:problem:"+t.slug, t.title
			break
		}
	}
	var refused *dialer.RefusedError
	if errors.As(err, &refused) && p.Type == "about:blank" {
		p.Type, p.Title = "urn:callbackd:problem:"+strings.ReplaceAll(string(refused.Reason), "_", "-"), "The number is refused"
	}
	var fe *dialer.FieldError
	if errors.As(err, &fe) {
		p.Errors = []fieldProblem{{Field: fe.Field, Detail: phone.MaskText(fe.Err.Error())}}
	}
	var de *dialer.DeadlineError
	if errors.As(err, &de) {
		q := de.Quote.UTC()
		p.Quote = &q
	}
	return p
}

func writeProblem(w http.ResponseWriter, err error) {
	p := problemOf(err)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeError answers err as a JSON object {"error": "..."} with its status: the unversioned
// routes' error shape, kept for their clients.
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), map[string]string{"error": phone.MaskText(err.Error())})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody reads r's JSON body into dst, refusing a body over maxBody, one that is not a
// single JSON object, and any field dst does not know, by name. An empty body is an empty
// object when empty is true (the optional bodies of cancel and reschedule).
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, empty bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return fmt.Errorf("%w: at most %d bytes", errTooLarge, maxBody)
	}
	if err != nil {
		return fmt.Errorf("%w: reading the body: %w", errMalformed, err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if empty {
			return nil
		}
		return fmt.Errorf("%w: the body is empty; a JSON object is needed", errMalformed)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	err = dec.Decode(dst)
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil && strings.TrimSpace(string(body[dec.InputOffset():])) != "":
		// dec.More would take a stray '}' or ']' after the object for the end of the body.
		return fmt.Errorf("%w: more than one JSON value in the body (text after byte %d)", errMalformed, dec.InputOffset())
	case err == nil:
		return exactNames(body, reflect.TypeOf(dst), "")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return &dialer.FieldError{Field: name, Err: fmt.Errorf("%w: unknown field", errMalformed)}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fmt.Errorf("%w: the body must be a JSON object", errMalformed)
		}
		return &dialer.FieldError{Field: field, Err: fmt.Errorf("%w: must be %s, not %s", errMalformed, jsonType(typeErr), typeErr.Value)}
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%w: the body is not JSON (at byte %d)", errMalformed, syntaxErr.Offset)
	default:
		// A time that does not parse, an unexpected end.
		return fmt.Errorf("%w: %w", errMalformed, err)
	}
}

func jsonType(e *json.UnmarshalTypeError) string {
	switch e.Type.String() {
	case "string", "time.Time", "queue.Reason":
		return "a string"
	case "bool":
		return "true or false"
	case "api.windowBody":
		return "an object"
	case "api.dateTime":
		return "a date-time (RFC 3339, as 2026-12-02T12:00:00Z)"
	}
	return "a " + e.Type.String()
}

// exactNames refuses a key of raw that names a field of t only in another case: encoding/json
// takes "Force" for "force", which DisallowUnknownFields does not catch, but the document (as
// every other JSON reader) knows only the names as they are spelled. prefix names the object
// raw is in ("window.").
func exactNames(raw []byte, t reflect.Type, prefix string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var obj map[string]json.RawMessage
	if t.Kind() != reflect.Struct || json.Unmarshal(raw, &obj) != nil {
		return nil // not an object (null, a time): the decoder judged it
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f, ok := fieldNamed(t, k)
		if !ok {
			return &dialer.FieldError{Field: prefix + k, Err: fmt.Errorf("%w: unknown field (names are case-sensitive)", errMalformed)}
		}
		if err := exactNames(obj[k], f.Type, prefix+k+"."); err != nil {
			return err
		}
	}
	return nil
}

// fieldNamed is the field of struct t whose JSON name is exactly name.
func fieldNamed(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "" {
			tag = f.Name
		}
		if f.IsExported() && tag != "-" && tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
