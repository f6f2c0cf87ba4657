package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/dialer"
	"github.com/callbackd/callbackd/queue"
)

// Events is the promise event stream as the API reads it (queue.Store).
type Events interface {
	EventsNow(ctx context.Context) (queue.Cursor, error)
	ReadEvents(ctx context.Context, c queue.Cursor, count int, block time.Duration) ([]queue.Event, queue.Cursor, error)
}

// DefaultHeartbeat is how often an idle event stream says it is alive: often enough for
// proxies that drop a silent connection after 30 or 60 seconds.
const DefaultHeartbeat = 15 * time.Second

// eventBatch is the most events one read of the stream takes.
const eventBatch = 100

// maxBlock bounds one blocking read of the stream. A blocked read does not see its client go
// away (Redis answers it, not the context), so it is kept short: a stream ends within it.
const maxBlock = time.Second

type eventView struct {
	ID      string            `json:"id"`
	Type    queue.EventType   `json:"type"`
	Queue   string            `json:"queue"`
	Promise string            `json:"promise"`
	Number  string            `json:"number"`
	At      time.Time         `json:"at"`
	Data    map[string]string `json:"data,omitempty"`
}

// streamEvents serves GET /events as Server-Sent Events: each event's SSE id is the cursor
// after it, so a client that reconnects with Last-Event-ID (browsers do by themselves) goes on
// where it stopped, from the Redis stream, on any daemon. Without one it starts from now.
// It ends when the client goes away (or Redis cannot be read: the client reconnects).
func (h *v1) streamEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "types"); err != nil {
		return err
	}
	var types []queue.EventType
	for _, raw := range q["types"] {
		for _, name := range strings.Split(raw, ",") {
			t, err := queue.ParseEventType(name)
			if err != nil {
				return &dialer.FieldError{Field: "types", Err: fmt.Errorf("%w: %w", errMalformed, err)}
			}
			types = append(types, t)
		}
	}
	ctx := r.Context()
	var cur queue.Cursor
	var err error
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		if cur, err = queue.ParseCursor(last); err != nil {
			return &dialer.FieldError{Field: "Last-Event-ID", Err: fmt.Errorf("%w: %w", errMalformed, err)}
		}
		// An unknown queue in it is the client's mistake, said now rather than as a broken stream.
		if _, _, err := h.events.ReadEvents(ctx, cur, 1, 0); err != nil && errors.Is(err, queue.ErrUnknownQueue) {
			return &dialer.FieldError{Field: "Last-Event-ID", Err: fmt.Errorf("%w: %w", errMalformed, err)}
		}
	} else if cur, err = h.events.EventsNow(ctx); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	// The server's timeouts bound ordinary requests; a stream lives as long as its client, and
	// a client gone is found by the heartbeat's failing write.
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: 2000\n: %s\n\n", cur); err != nil {
		return nil
	}
	_ = rc.Flush()
	pii := rolesOf(r).Has(config.RolePII)
	// The heartbeat is counted in idle reads, so it needs no clock: Redis does the waiting.
	block := min(h.heartbeat, maxBlock)
	beatEvery := int((h.heartbeat + block - 1) / block)
	idle := 0
	for ctx.Err() == nil {
		evs, next, err := h.events.ReadEvents(ctx, cur, eventBatch, block)
		if err != nil && ctx.Err() == nil {
			if next.String() == cur.String() {
				h.log.Warn("event stream: reading events failed; ending the stream for the client to resume", zap.Error(err))
				return nil
			}
			h.log.Warn("event stream: an entry could not be read and was skipped", zap.Error(err))
		}
		wrote := false
		for _, e := range evs {
			cur = cur.Advance(e)
			if len(types) > 0 && !slices.Contains(types, e.Type) {
				continue
			}
			if !pii {
				e = e.Masked()
			}
			v := eventView{ID: e.ID, Type: e.Type, Queue: e.Queue, Promise: e.Promise, Number: e.Number, At: e.At, Data: e.Data}
			data, err := json.Marshal(v)
			if err != nil {
				return nil
			}
			if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", cur, e.Type, data); err != nil {
				return nil
			}
			wrote = true
		}
		if idle++; wrote {
			idle = 0
		}
		if idle >= beatEvery {
			idle = 0
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
		}
		// Skipped events move the cursor too; without this a filtered client would resume
		// from before them after every reconnect.
		cur = next
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
	return nil
}
