package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
	"go.uber.org/zap"
)

// promiseView is a promise as the API shows it.
type promiseView struct {
	ID              string         `json:"id"`
	Queue           string         `json:"queue"`
	Number          string         `json:"number"`
	Name            string         `json:"name,omitempty"`
	State           queue.State    `json:"state"`
	Reasons         []queue.Reason `json:"reasons"`
	Targets         []string       `json:"targets"`
	Owner           string         `json:"owner,omitempty"`
	Created         time.Time      `json:"created"`
	NotBefore       time.Time      `json:"not_before"`
	Deadline        time.Time      `json:"deadline"`
	Attempts        int            `json:"attempts"`
	MaxAttempts     int            `json:"max_attempts"`
	Note            string         `json:"note,omitempty"`
	ExternalRef     string         `json:"external_ref,omitempty"`
	AtRiskFromStart bool           `json:"at_risk_from_start"`
	Agent           string         `json:"agent,omitempty"`
	FinishedAt      *time.Time     `json:"finished_at,omitempty"`
	// Prediction is the forecast of a pending promise (absent for others, and for pending
	// ones beyond what the forecast reads).
	Prediction *predictionView `json:"prediction,omitempty"`
	// History is the attempt history, in GET /promises/{id} only.
	History []attemptView `json:"history,omitempty"`
}

type predictionView struct {
	// Connect is when an agent is predicted to start the callback; null when no agent is
	// predicted within the forecast's horizon.
	Connect      *time.Time `json:"connect"`
	SlackSeconds *float64   `json:"slack_seconds"`
	AtRisk       bool       `json:"at_risk"`
	Agent        string     `json:"agent,omitempty"`
}

type attemptView struct {
	At     time.Time `json:"at"`
	Result string    `json:"result"`
	Detail string    `json:"detail,omitempty"`
}

func viewOf(r *http.Request, j queue.Job, pred *dialer.Prediction, history bool) promiseView {
	v := promiseView{ID: j.ID, Queue: j.Queue, Number: mask(r, j.Number), Name: j.Name, State: j.State,
		Reasons: j.Reasons, Targets: j.Targets, Owner: j.Owner, Created: j.Created, NotBefore: j.NotBefore,
		Deadline: j.Deadline, Attempts: j.Attempts, MaxAttempts: j.MaxAttempts, Note: j.Note,
		ExternalRef: j.ExternalRef, AtRiskFromStart: j.AtRiskFromStart, Agent: j.Lease.Worker}
	if v.Reasons == nil {
		v.Reasons = []queue.Reason{}
	}
	if v.Targets == nil {
		v.Targets = []string{}
	}
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt
		v.FinishedAt = &t
	}
	if pred != nil && j.State == queue.StatePending {
		p := &predictionView{AtRisk: pred.AtRisk(), Agent: pred.Agent}
		if !pred.Connect.IsZero() {
			c := pred.Connect
			p.Connect = &c
		}
		if s, ok := pred.Slack(); ok {
			secs := s.Seconds()
			p.SlackSeconds = &secs
		}
		v.Prediction = p
	}
	if history {
		v.History = []attemptView{}
		for _, a := range j.History {
			v.History = append(v.History, attemptView{At: a.At, Result: a.Result, Detail: a.Detail})
		}
	}
	return v
}

// predictions is the forecast of each queue of jobs that has a pending one, read once per
// queue. A forecast that cannot be read leaves the promises without predictions rather than
// failing the read of the promises themselves.
func (h *v1) predictions(r *http.Request, jobs []queue.Job) map[string]dialer.Prediction {
	out := map[string]dialer.Prediction{}
	read := map[string]bool{}
	for _, j := range jobs {
		if j.State != queue.StatePending || read[j.Queue] {
			continue
		}
		read[j.Queue] = true
		preds, err := h.admin.Predictions(r.Context(), j.Queue)
		if err != nil {
			continue
		}
		for id, p := range preds {
			out[id] = p
		}
	}
	return out
}

type windowBody struct {
	NotBefore *dateTime `json:"not_before"`
	Deadline  *dateTime `json:"deadline"`
}

// dateTime is a time of a request body: one that does not parse is an error the decoder
// names the field of ("window.deadline"), as it does for a value of the wrong type.
type dateTime time.Time

func (d *dateTime) UnmarshalJSON(b []byte) error {
	var t time.Time
	if err := t.UnmarshalJSON(b); err != nil {
		value := string(b)
		switch b[0] {
		case '"':
		case '{':
			value = "object"
		case '[':
			value = "array"
		case 't', 'f':
			value = "bool"
		default:
			value = "number"
		}
		return &json.UnmarshalTypeError{Value: value, Type: reflect.TypeFor[dateTime]()}
	}
	*d = dateTime(t)
	return nil
}

func (w *windowBody) times() (notBefore, deadline time.Time) {
	if w == nil {
		return
	}
	if w.NotBefore != nil {
		notBefore = time.Time(*w.NotBefore)
	}
	if w.Deadline != nil {
		deadline = time.Time(*w.Deadline)
	}
	return
}

type makeBody struct {
	Number      string      `json:"number"`
	Name        string      `json:"name"`
	Queue       string      `json:"queue"`
	Reason      string      `json:"reason"`
	Window      *windowBody `json:"window"`
	Note        string      `json:"note"`
	ExternalRef string      `json:"external_ref"`
	Force       bool        `json:"force"`
}

type madeView struct {
	Promise promiseView `json:"promise"`
	// Merged: the number's open promise in the queue took the request.
	Merged bool `json:"merged"`
	// Replayed: the idempotency key's first request made the promise.
	Replayed bool `json:"replayed"`
	// Quote is the honest deadline when the promise was made (null on a replay, or when
	// none could be kept and force made the promise anyway).
	Quote *time.Time `json:"quote"`
	// QueueRule says what chose the queue.
	QueueRule string `json:"queue_rule"`
}

// maxIdempotencyKey bounds the Idempotency-Key header, which is kept in Redis for a day.
const maxIdempotencyKey = 255

func (h *v1) makePromise(w http.ResponseWriter, r *http.Request) error {
	var b makeBody
	if err := decodeBody(w, r, &b, false); err != nil {
		return err
	}
	if b.Number == "" {
		return &dialer.FieldError{Field: "number", Err: fmt.Errorf("%w: required", queue.ErrInvalid)}
	}
	if err := checkTexts("name", b.Name, "note", b.Note, "external_ref", b.ExternalRef); err != nil {
		return err
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return &dialer.FieldError{Field: "Idempotency-Key", Err: fmt.Errorf("%w: at most %d printable ASCII characters", errMalformed, maxIdempotencyKey)}
	}
	nb, dl := b.Window.times()
	made, err := h.admin.Make(r.Context(), rolesOf(r).Name, key, dialer.MakeRequest{Number: b.Number, Name: b.Name,
		Queue: b.Queue, Reason: queue.Reason(b.Reason), NotBefore: nb, Deadline: dl, Note: b.Note,
		ExternalRef: b.ExternalRef, Force: b.Force})
	if err != nil {
		return err
	}
	out := madeView{Merged: made.Merged, Replayed: made.Replayed, QueueRule: made.Rule}
	if !made.Quote.IsZero() {
		q := made.Quote
		out.Quote = &q
	}
	preds := h.predictions(r, []queue.Job{made.Job})
	var pred *dialer.Prediction
	if p, ok := preds[made.Job.ID]; ok {
		pred = &p
	}
	out.Promise = viewOf(r, made.Job, pred, false)
	w.Header().Set("Location", v1Prefix+"/promises/"+made.Job.ID)
	status := http.StatusCreated
	if made.Merged || made.Replayed {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
	return nil
}

type pageView struct {
	Promises []promiseView `json:"promises"`
	// NextCursor reads the next page; absent on the last.
	NextCursor string `json:"next_cursor,omitempty"`
}

// maxPage is the most promises one page holds; defaultPage when the client does not say.
const (
	maxPage     = 1000
	defaultPage = 50
)

func (h *v1) listPromises(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "queue", "state", "number", "limit", "cursor"); err != nil {
		return err
	}
	o := queue.PageOptions{Limit: defaultPage}
	for _, raw := range q["state"] {
		for _, name := range strings.Split(raw, ",") {
			st, err := queue.ParseState(name)
			if err != nil {
				return &dialer.FieldError{Field: "state", Err: fmt.Errorf("%w: %w", errMalformed, err)}
			}
			o.States = append(o.States, st)
		}
	}
	if n := q.Get("number"); n != "" {
		// Whether a number is owed a callback is itself the customer's data.
		if !rolesOf(r).Has(config.RolePII) {
			return &dialer.FieldError{Field: "number", Err: fmt.Errorf("%w: filtering by number needs the pii role", errForbidden)}
		}
		e164, err := phone.ParseE164(n)
		if err != nil {
			return &dialer.FieldError{Field: "number", Err: fmt.Errorf("%w: %w", queue.ErrInvalid, err)}
		}
		o.Number = e164
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxPage {
			return &dialer.FieldError{Field: "limit", Err: fmt.Errorf("%w: must be a whole number from 1 to %d", errMalformed, maxPage)}
		}
		o.Limit = n
	}
	after, err := queue.ParsePagePos(q.Get("cursor"))
	if err != nil {
		return &dialer.FieldError{Field: "cursor", Err: fmt.Errorf("%w: %w", errMalformed, err)}
	}
	o.After = after
	jobs, next, err := h.admin.Page(r.Context(), q.Get("queue"), o)
	if errors.Is(err, queue.ErrSkipped) {
		// A broken record (quarantined when a claim or reclaim meets it) hides no other
		// promise: the page is answered without it, and the log names it.
		h.log.Warn("admin API: a promise that cannot be read was left out of a page", zap.String("error", phone.MaskText(err.Error())))
	} else if err != nil {
		return err
	}
	preds := h.predictions(r, jobs)
	out := pageView{Promises: make([]promiseView, 0, len(jobs)), NextCursor: next.String()}
	for _, j := range jobs {
		var pred *dialer.Prediction
		if p, ok := preds[j.ID]; ok {
			pred = &p
		}
		out.Promises = append(out.Promises, viewOf(r, j, pred, false))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// onlyParams refuses a query parameter the route does not know: a typo must not silently
// widen a list.
func onlyParams(q map[string][]string, known ...string) error {
	for name := range q {
		found := false
		for _, k := range known {
			found = found || k == name
		}
		if !found {
			return &dialer.FieldError{Field: name, Err: fmt.Errorf("%w: unknown query parameter (known: %s)", errMalformed, strings.Join(known, ", "))}
		}
	}
	return nil
}

func (h *v1) getPromise(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	j, err := h.admin.Find(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	preds := h.predictions(r, []queue.Job{j})
	var pred *dialer.Prediction
	if p, ok := preds[j.ID]; ok {
		pred = &p
	}
	writeJSON(w, http.StatusOK, viewOf(r, j, pred, true))
	return nil
}

type cancelBody struct {
	Detail string `json:"detail"`
}

func (h *v1) cancelPromise(w http.ResponseWriter, r *http.Request) error {
	var b cancelBody
	if err := decodeBody(w, r, &b, true); err != nil {
		return err
	}
	if err := checkTexts("detail", b.Detail); err != nil {
		return err
	}
	j, err := h.admin.Cancel(r.Context(), r.PathValue("id"), b.Detail)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewOf(r, j, nil, true))
	return nil
}

type rescheduleBody struct {
	Window *windowBody `json:"window"`
	Force  bool        `json:"force"`
	Detail string      `json:"detail"`
}

type rescheduledView struct {
	Promise promiseView `json:"promise"`
	Quote   *time.Time  `json:"quote"`
}

func (h *v1) reschedulePromise(w http.ResponseWriter, r *http.Request) error {
	var b rescheduleBody
	if err := decodeBody(w, r, &b, true); err != nil {
		return err
	}
	if err := checkTexts("detail", b.Detail); err != nil {
		return err
	}
	nb, dl := b.Window.times()
	j, quote, err := h.admin.Reschedule(r.Context(), r.PathValue("id"), nb, dl, b.Force, b.Detail)
	if err != nil {
		return err
	}
	out := rescheduledView{}
	if !quote.IsZero() {
		out.Quote = &quote
	}
	preds := h.predictions(r, []queue.Job{j})
	var pred *dialer.Prediction
	if p, ok := preds[j.ID]; ok {
		pred = &p
	}
	out.Promise = viewOf(r, j, pred, true)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// checkTexts refuses, naming the field, a text the store would refuse (too long, or with a
// control character) without saying which field it was; fieldsAndValues alternate.
func checkTexts(fieldsAndValues ...string) error {
	for i := 0; i+1 < len(fieldsAndValues); i += 2 {
		field := fieldsAndValues[i]
		if err := queue.CheckText(field, fieldsAndValues[i+1]); err != nil {
			return &dialer.FieldError{Field: field, Err: err}
		}
	}
	return nil
}
