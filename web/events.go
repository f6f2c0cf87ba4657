package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// eventBlock is how long one read of the stream waits for an event. A read blocked in Redis
// does not end when the request's context does (the client library bounds it only by
// deadlines), so it is kept short: a stream ends within it of the browser going away or the
// daemon stopping. Each empty read sends a comment, which also finds a closed connection.
const eventBlock = 2 * time.Second

// pageEvent is one promise event as the page's script gets it.
type pageEvent struct {
	Type    queue.EventType `json:"type"`
	Queue   string          `json:"queue"`
	Promise string          `json:"promise"`
	Number  string          `json:"number"`
	At      time.Time       `json:"at"`
	Agent   string          `json:"agent,omitempty"`
}

// events relays the promise event stream as Server-Sent Events: from the Last-Event-ID the
// browser sends when it reconnects (the id of each event is the stream's cursor after it),
// else from ?from= (the cursor the page was rendered at), else from now. Each stream holds one Redis connection blocked in a read, so there are
// at most Options.MaxStreams at once; the page falls back to reloading its board now and
// then when it gets none.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(r)
	if !ok {
		http.Error(w, "not signed in: reload the page", http.StatusUnauthorized)
		return
	}
	select {
	case h.streams <- struct{}{}:
		defer func() { <-h.streams }()
	default:
		w.Header().Set("Retry-After", "30")
		http.Error(w, "too many live pages are open; this one refreshes every half minute instead", http.StatusServiceUnavailable)
		return
	}
	ctx := r.Context()
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("from") // the page's first connection: where its board was read
	}
	cur := h.resumeFrom(last)
	if cur == nil {
		now, err := h.o.Events.EventsNow(ctx)
		if err != nil {
			h.o.Logger.Warn("supervisor page: could not find the end of the event stream", zap.Error(err))
			http.Error(w, "the event stream cannot be read now", http.StatusServiceUnavailable)
			return
		}
		cur = now
	}
	mask := h.o.Mask
	if s.Numbers {
		mask = func(n string) string { return n }
	}
	// The first read waits for nothing and comes before the answer, so a stream that cannot be
	// read is refused rather than opened (the page would show itself live) and ended at once.
	evs, next, err := h.o.Events.ReadEvents(ctx, cur, 100, 0)
	if err != nil && next.String() == cur.String() {
		h.o.Logger.Warn("supervisor page: reading the event stream failed", zap.Error(err))
		http.Error(w, "the event stream cannot be read now", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	// The server's write timeout is for answers, not for a stream that is meant to stay open.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var out strings.Builder
	out.WriteString("retry: 3000\n\n")
	for {
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			h.o.Logger.Warn("supervisor page: reading the event stream failed", zap.Error(err))
			if next.String() == cur.String() {
				// Nothing was read: the browser reconnects with the last id it got, and
				// nothing is lost. Otherwise only unreadable entries were skipped.
				return
			}
		}
		if len(evs) == 0 {
			out.WriteString(": nothing new\n\n")
		}
		for _, e := range evs {
			cur = cur.Advance(e)
			data, err := json.Marshal(pageEvent{Type: e.Type, Queue: e.Queue, Promise: e.Promise, Number: mask(e.Number),
				At: e.At, Agent: agentOf(e.Data["agent"])})
			if err != nil {
				h.o.Logger.Error("supervisor page: encoding an event failed", zap.Error(err))
				return
			}
			fmt.Fprintf(&out, "id: %s\nevent: promise\ndata: %s\n\n", cur, data)
		}
		cur = next
		if _, err := fmt.Fprint(w, out.String()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		out.Reset()
		evs, next, err = h.o.Events.ReadEvents(ctx, cur, 100, eventBlock)
	}
}

// resumeFrom is the cursor a reconnecting browser sent, without the queues the daemon no
// longer has (reading those would fail); nil when there is none or it does not parse, and
// the stream then starts from now.
func (h *Handler) resumeFrom(lastID string) queue.Cursor {
	if lastID == "" {
		return nil
	}
	c, err := queue.ParseCursor(lastID)
	if err != nil {
		return nil
	}
	known := h.o.Promises.Queues()
	for q := range c {
		if !slices.Contains(known, q) {
			delete(c, q)
		}
	}
	return c
}

// agentOf names the agent of a worker ("<daemon instance>/<agent id>").
func agentOf(worker string) string { return worker[strings.LastIndex(worker, "/")+1:] }
