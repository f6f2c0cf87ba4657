package queue

// TEMPORARY: the part of the promise event stream contract (shared notes, events.md) the
// webhook deliverer needs, until the lead's queue/events.go lands on main. Delete this file
// on that merge; the names and behaviour are the contract's.

import (
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

type EventType string

const (
	EventMade            EventType = "made"
	EventMerged          EventType = "merged"
	EventClaimed         EventType = "claimed"
	EventAgentRung       EventType = "agent_rung"
	EventCustomerDialled EventType = "customer_dialled"
	EventConnected       EventType = "connected"
	EventKept            EventType = "kept"
	EventLate            EventType = "late"
	EventUnreachable     EventType = "unreachable"
	EventResolved        EventType = "resolved"
	EventCancelled       EventType = "cancelled"
	EventExpired         EventType = "expired"
	EventFailed          EventType = "failed"
	EventAtRisk          EventType = "at_risk"
	EventRescheduled     EventType = "rescheduled"
	EventRetry           EventType = "retry"
	EventReleased        EventType = "released"
)

func EventTypes() []EventType {
	return []EventType{EventMade, EventMerged, EventClaimed, EventAgentRung, EventCustomerDialled, EventConnected,
		EventKept, EventLate, EventUnreachable, EventResolved, EventCancelled, EventExpired, EventFailed,
		EventAtRisk, EventRescheduled, EventRetry, EventReleased}
}

func ParseEventType(s string) (EventType, error) {
	for _, t := range EventTypes() {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("%w: unknown event type %q", ErrInvalid, s)
}

type Event struct {
	ID      string            `json:"id"`
	Type    EventType         `json:"type"`
	Queue   string            `json:"queue"`
	Promise string            `json:"promise"`
	Number  string            `json:"number"`
	At      time.Time         `json:"at"`
	Data    map[string]string `json:"data,omitempty"`
}

func (s *Store) EventStreamKey(queue string) string { return s.ks(queue).base + "events" }

func ParseEvent(queue string, m redis.XMessage) (Event, error) {
	e := Event{ID: queue + "/" + m.ID, Queue: queue}
	for k, v := range m.Values {
		str, _ := v.(string)
		switch k {
		case "type":
			t, err := ParseEventType(str)
			if err != nil {
				return Event{}, fmt.Errorf("event %s: %w", e.ID, err)
			}
			e.Type = t
		case "promise":
			e.Promise = str
		case "number":
			e.Number = str
		case "at":
			ms, err := strconv.ParseInt(str, 10, 64)
			if err != nil {
				return Event{}, fmt.Errorf("event %s: %w: at %q is not unix milliseconds", e.ID, ErrInvalid, str)
			}
			e.At = time.UnixMilli(ms).UTC()
		default:
			if e.Data == nil {
				e.Data = map[string]string{}
			}
			e.Data[k] = str
		}
	}
	return e, nil
}
