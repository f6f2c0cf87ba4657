package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/phone"
)

// EventType names one thing that happened to a promise. The scripts write the ones that come
// with a state change in the same atomic step; the dialer emits the two that do not.
type EventType string

// The event types, in the order of a promise's life.
const (
	EventMade            EventType = "made"             // a new promise
	EventMerged          EventType = "merged"           // a request joined an open promise
	EventRescheduled     EventType = "rescheduled"      // its window was changed by hand
	EventAtRisk          EventType = "at_risk"          // the forecast says its deadline will be missed (dialer)
	EventClaimed         EventType = "claimed"          // an agent was chosen for it
	EventAgentRung       EventType = "agent_rung"       // the agent's phone rings (dialer)
	EventCustomerDialled EventType = "customer_dialled" // the customer is being called: an attempt
	EventConnected       EventType = "connected"        // the customer answered and talks to the agent
	EventRetry           EventType = "retry"            // an attempt failed; it waits for its next one
	EventReleased        EventType = "released"         // given back without using an attempt
	EventKept            EventType = "kept"
	EventLate            EventType = "late"
	EventUnreachable     EventType = "unreachable"
	EventResolved        EventType = "resolved"
	EventCancelled       EventType = "cancelled"
	EventExpired         EventType = "expired"
	EventFailed          EventType = "failed"
)

// EventTypes lists every event type.
func EventTypes() []EventType {
	return []EventType{EventMade, EventMerged, EventRescheduled, EventAtRisk, EventClaimed,
		EventAgentRung, EventCustomerDialled, EventConnected, EventRetry, EventReleased,
		EventKept, EventLate, EventUnreachable, EventResolved, EventCancelled, EventExpired, EventFailed}
}

// ParseEventType reads an event type's name.
func ParseEventType(s string) (EventType, error) {
	if slices.Contains(EventTypes(), EventType(s)) {
		return EventType(s), nil
	}
	return "", fmt.Errorf("%w: unknown event type %q", ErrInvalid, s)
}

// emittedByHand says whether a caller may append t with Emit; the others come only from the
// scripts, with the change they report.
func emittedByHand(t EventType) bool { return t == EventAtRisk || t == EventAgentRung }

// Event is one entry of a queue's event stream.
type Event struct {
	// ID is stable and unique across queues: "<queue>/<stream id>".
	ID      string    `json:"id"`
	Type    EventType `json:"type"`
	Queue   string    `json:"queue"`
	Promise string    `json:"promise"`
	// Number is the customer's, in full; whoever shows it decides whether to mask it.
	Number string    `json:"number"`
	At     time.Time `json:"at"`
	// Data holds the optional fields that have a value: agent, deadline and not_before (unix
	// ms), attempts, reason, detail; a finish also reasons (a JSON list) and target.
	Data map[string]string `json:"data,omitempty"`
}

// eventField says whether k is a field every entry has (the rest go to Data).
func eventField(k string) bool { return k == "type" || k == "promise" || k == "number" || k == "at" }

// ParseEvent reads one entry of queue's event stream.
func ParseEvent(queue string, m redis.XMessage) (Event, error) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	what := fmt.Sprintf("reading event %s/%s", queue, m.ID)
	// What a broken field holds is quoted, and these errors are logged: numbers are masked.
	t, err := ParseEventType(str("type"))
	if err != nil {
		return Event{}, fmt.Errorf("%s: %w", what, maskedError{err})
	}
	if str("promise") == "" {
		return Event{}, fmt.Errorf("%s: %w: no promise id", what, ErrInvalid)
	}
	// Every event is written with its time; one without is not an event at the epoch.
	if str("at") == "" {
		return Event{}, fmt.Errorf("%s: %w: field at missing", what, ErrInvalid)
	}
	at, err := parseMillis(str("at"))
	if err != nil {
		return Event{}, fmt.Errorf("%s: field at: %w", what, maskedError{err})
	}
	e := Event{ID: queue + "/" + m.ID, Type: t, Queue: queue, Promise: str("promise"),
		Number: str("number"), At: at}
	for k, v := range m.Values {
		if eventField(k) || v == "" {
			continue
		}
		if e.Data == nil {
			e.Data = map[string]string{}
		}
		e.Data[k], _ = v.(string)
	}
	return e, nil
}

// StreamID is the event's position in its queue's stream.
func (e Event) StreamID() string { return e.ID[strings.IndexByte(e.ID, '/')+1:] }

// Masked is the event as shown to whoever may not see numbers: the customer's number masked,
// and any number inside its optional fields (a detail quoting a dial string) too.
func (e Event) Masked() Event {
	e.Number = phone.Mask(e.Number)
	if len(e.Data) > 0 {
		data := make(map[string]string, len(e.Data))
		for k, v := range e.Data {
			data[k] = phone.MaskText(v)
		}
		e.Data = data
	}
	return e
}

// EventStreamKey is the Redis key of queue's event stream, for readers that keep their own
// position in it (a consumer group).
func (s *Store) EventStreamKey(queue string) string { return s.ks(queue).events() }

func (k keyspace) events() string { return k.base + "events" }

// Cursor is a position in every queue's event stream: queue → the last stream id read. A queue
// it does not name is read from the start of what its stream retains.
type Cursor map[string]string

// String writes the cursor as "q1=<id>,q2=<id>", queues sorted: short enough for an SSE id, so
// a client resumes with Last-Event-ID.
func (c Cursor) String() string {
	qs := make([]string, 0, len(c))
	for q := range c {
		qs = append(qs, q)
	}
	sort.Strings(qs)
	parts := make([]string, len(qs))
	for i, q := range qs {
		parts[i] = q + "=" + c[q]
	}
	return strings.Join(parts, ",")
}

// ParseCursor reads what Cursor.String wrote.
func ParseCursor(s string) (Cursor, error) {
	c := Cursor{}
	if s == "" {
		return c, nil
	}
	for _, part := range strings.Split(s, ",") {
		q, id, ok := strings.Cut(part, "=")
		if !ok || q == "" {
			return nil, fmt.Errorf("%w: event cursor part %q is not queue=id", ErrInvalid, part)
		}
		if err := ValidateQueueName(q); err != nil {
			return nil, fmt.Errorf("%w: event cursor part %q: %w", ErrInvalid, part, err)
		}
		if !validStreamID(id) {
			return nil, fmt.Errorf("%w: event cursor part %q: %q is not a stream id (ms-seq)", ErrInvalid, part, id)
		}
		if _, dup := c[q]; dup {
			return nil, fmt.Errorf("%w: event cursor names queue %s twice", ErrInvalid, q)
		}
		c[q] = id
	}
	return c, nil
}

func validStreamID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

// Advance returns a copy of c that has read e.
func (c Cursor) Advance(e Event) Cursor {
	n := make(Cursor, len(c)+1)
	for q, id := range c {
		n[q] = id
	}
	n[e.Queue] = e.StreamID()
	return n
}

// EventsNow is the current end of every queue's event stream: reading from it gives only what
// happens from now on.
func (s *Store) EventsNow(ctx context.Context) (Cursor, error) {
	c := Cursor{}
	for _, q := range s.Queues() {
		last, err := s.rdb.XRevRangeN(ctx, s.ks(q).events(), "+", "-", 1).Result()
		if err != nil {
			return nil, fmt.Errorf("reading the end of queue %s's event stream: %w", q, err)
		}
		c[q] = "0-0"
		if len(last) == 1 {
			c[q] = last[0].ID
		}
	}
	return c, nil
}

// ReadEvents returns up to count events after c, each queue's in stream order, and c advanced
// past them. With none to read it waits up to block for one (0: it does not wait). An entry
// that cannot be read is skipped and reported in the error beside the events that could:
// the cursor moves past it, so one bad entry does not stop every reader for good.
func (s *Store) ReadEvents(ctx context.Context, c Cursor, count int, block time.Duration) ([]Event, Cursor, error) {
	if count <= 0 {
		return nil, c, fmt.Errorf("reading events: %w: count %d must be positive", ErrInvalid, count)
	}
	for q := range c {
		if err := s.checkQueue(q); err != nil {
			return nil, c, fmt.Errorf("reading events: the cursor names %w", err)
		}
	}
	qs := s.Queues()
	streams := make([]string, 0, 2*len(qs))
	for _, q := range qs {
		streams = append(streams, s.ks(q).events())
	}
	for _, q := range qs {
		id := c[q]
		if id == "" {
			id = "0-0"
		}
		streams = append(streams, id)
	}
	args := &redis.XReadArgs{Streams: streams, Count: int64(count), Block: -1}
	if block > 0 {
		args.Block = block
	}
	res, err := s.rdb.XRead(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		return nil, c, nil
	}
	if err != nil {
		return nil, c, fmt.Errorf("reading events: %w", err)
	}
	next := c
	var bad []error
	perQueue := make([][]Event, 0, len(res))
	for _, st := range res {
		q := queueOfEvents(st.Stream, s.prefix)
		var evs []Event
		for _, m := range st.Messages {
			e, err := ParseEvent(q, m)
			if err != nil {
				bad = append(bad, err)
				next = next.Advance(Event{ID: q + "/" + m.ID, Queue: q})
				continue
			}
			evs = append(evs, e)
			next = next.Advance(e)
		}
		perQueue = append(perQueue, evs)
	}
	// Several queues' events interleave by time, so a reader sees one story; each queue's keep
	// their stream order (daemons' clocks may disagree by a little), so a reader that advances
	// its cursor event by event never steps back in a queue.
	out := mergeByTime(perQueue)
	return out, next, errors.Join(bad...)
}

// mergeByTime merges lists each in its own order into one, taking the earliest head each time.
func mergeByTime(lists [][]Event) []Event {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]Event, 0, n)
	for len(out) < n {
		best := -1
		for i, l := range lists {
			if len(l) > 0 && (best < 0 || l[0].At.Before(lists[best][0].At)) {
				best = i
			}
		}
		out = append(out, lists[best][0])
		lists[best] = lists[best][1:]
	}
	return out
}

// queueOfEvents reads the queue name back out of "<prefix>:{Q}:events".
func queueOfEvents(key, prefix string) string {
	return strings.TrimSuffix(strings.TrimPrefix(key, prefix+":{"), "}:events")
}

// Emit appends one of the events the dialer knows about and no script does (EventAgentRung,
// EventAtRisk) for promise ref. data holds optional fields, e.g. "agent".
func (s *Store) Emit(ctx context.Context, ref Ref, t EventType, data map[string]string) error {
	what := fmt.Sprintf("emitting %s for promise %s", t, ref)
	if err := s.checkRef(ref); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !emittedByHand(t) {
		return fmt.Errorf("%s: %w: only %s and %s are emitted by hand, the rest with their change", what, ErrInvalid, EventAtRisk, EventAgentRung)
	}
	args := make([]any, 0, 2*len(data))
	keys := make([]string, 0, len(data))
	for k := range data {
		if eventField(k) {
			return fmt.Errorf("%s: %w: field %q is set by the store", what, ErrInvalid, k)
		}
		if err := CheckText(k, data[k]); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, k, data[k])
	}
	k := s.ks(ref.Queue)
	res, err := s.run(ctx, s.sc.emit, ref.Queue, k.common(k.job(ref.ID)), s.clk.Now(), append([]any{ref.ID, string(t)}, args...)...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if status, _ := res[0].(string); status == "err" {
		return scriptError(res, what)
	}
	return nil
}
