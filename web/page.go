package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

var templateFuncs = template.FuncMap{
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}

// page serves the whole page, or the login form to a browser without a session. A token in
// the address (/?token=…) signs in and is taken out of the address at once.
func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	if token := r.URL.Query().Get("token"); token != "" {
		if _, ok := h.authorize(token); !ok {
			h.loginPage(w, http.StatusUnauthorized, "That token is not accepted, or may not read the page.")
			return
		}
		h.signIn(w, r, token)
		return
	}
	s, ok := h.session(r)
	if !ok {
		h.loginPage(w, http.StatusOK, "")
		return
	}
	b := h.read(r.Context(), s)
	// The notice of a cancel is made here, and shown only for what reads as a promise's name
	// (a queue of the daemon, a promise id), so a link cannot put words of its own on the page.
	if ref := r.URL.Query().Get("cancelled"); h.promiseName(ref) {
		b.Notice = "Promise " + ref + " cancelled."
	} else if ref := r.URL.Query().Get("finished"); h.promiseName(ref) {
		b.Notice = "Promise " + ref + " had already finished; nothing changed."
	}
	h.render(w, http.StatusOK, "page.html", b)
}

// promiseIDRE is what a promise id looks like (a ULID).
var promiseIDRE = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// promiseName reports whether ref is "<queue>/<promise id>" of one of the daemon's queues.
func (h *Handler) promiseName(ref string) bool {
	q, id, ok := strings.Cut(ref, "/")
	return ok && slices.Contains(h.o.Promises.Queues(), q) && promiseIDRE.MatchString(id)
}

// board serves the live part of the page alone; the page's script swaps it in on an event.
func (h *Handler) board(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(r)
	if !ok {
		http.Error(w, "not signed in: reload the page", http.StatusUnauthorized)
		return
	}
	h.render(w, http.StatusOK, "board", h.read(r.Context(), s))
}

// cancel withdraws an open promise for a session whose token may write, and names the token
// in the promise's history.
func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(r)
	switch {
	case !ok:
		http.Error(w, "not signed in: reload the page", http.StatusUnauthorized)
		return
	case !h.validForm(r, s):
		http.Error(w, "the form is stale or not from this page: reload the page and try again", http.StatusForbidden)
		return
	case !s.Write:
		http.Error(w, "this token may not cancel promises (it lacks the write role)", http.StatusForbidden)
		return
	}
	ref := queue.Ref{Queue: r.PathValue("queue"), ID: r.PathValue("id")}
	_, err := h.o.Promises.Cancel(r.Context(), ref, "cancelled by "+s.Name+" on the supervisor page")
	outcome := "cancelled"
	switch {
	case err == nil:
		h.o.Logger.Info("promise cancelled on the supervisor page", zap.String("queue", ref.Queue),
			zap.String("promise", ref.ID), zap.String("by", s.Name))
	case errors.Is(err, queue.ErrWrongState):
		outcome = "finished"
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, queue.ErrInvalid),
		errors.Is(err, queue.ErrUnknownQueue), errors.Is(err, queue.ErrInvalidQueue):
		http.Error(w, fmt.Sprintf("there is no promise %s in queue %s", ref.ID, ref.Queue), http.StatusNotFound)
		return
	default:
		h.o.Logger.Error("supervisor page: cancelling a promise failed", zap.String("queue", ref.Queue),
			zap.String("promise", ref.ID), zap.Error(err))
		http.Error(w, "cancelling the promise failed; see the daemon's log", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/?"+url.Values{outcome: {ref.Queue + "/" + ref.ID}}.Encode(), http.StatusSeeOther)
}

// render executes a template into a buffer first, so a failure answers 500 rather than half
// a page.
func (h *Handler) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := h.pages.ExecuteTemplate(&buf, name, data); err != nil {
		h.o.Logger.Error("supervisor page: rendering failed", zap.String("template", name), zap.Error(err))
		http.Error(w, "rendering the page failed; see the daemon's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}
