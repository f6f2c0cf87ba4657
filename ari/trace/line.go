// Package trace is the recording format of `callbackd record` and `callbackd replay`, the one
// the real-Asterisk recordings in ari/testdata/traces are written in: one JSON object per line,
// each a Line. Recordings outlive the code that made them and come from other recorders too, so
// the format only grows: readers skip kinds and fields they do not know.
//
// The package knows ari's event model and nothing of what is done with the events: the
// detector and the commands use trace, never the other way round.
package trace

import (
	"encoding/json"
	"time"
)

// MaxLine bounds one line of a recording; a longer line is an error, not a malformed event.
const MaxLine = 16 << 20

// Kind says what a line records.
type Kind string

const (
	// KindEvent is one WebSocket message: App received Event, the raw ARI JSON as it arrived.
	KindEvent Kind = "event"
	// KindWS is the recorder's own socket of App connecting or closing (State).
	KindWS Kind = "ws"
	// KindRest is one REST call and its reply.
	KindRest Kind = "rest"
	// KindNote is a remark of the recorder or a scenario script (Text); not from Asterisk.
	KindNote Kind = "note"
)

// Line is one line of a recording. Seq counts every line of the file in the order the recorder
// saw them, At is when it saw it; the other fields belong to one kind or another and are left
// out when empty. The field order is the order on disk.
type Line struct {
	Seq   int             `json:"seq"`
	At    time.Time       `json:"at"`
	Kind  Kind            `json:"kind"`
	App   string          `json:"app,omitempty"`
	State string          `json:"state,omitempty"` // ws: "connected" or "closed"
	URL   string          `json:"url,omitempty"`   // ws: the events URL; subscribeAll=true marks the monitor
	Text  string          `json:"text,omitempty"`
	Event json.RawMessage `json:"event,omitempty"`

	// ws lines of a socket that closed.
	CloseStatus int    `json:"close_status,omitempty"`
	Error       string `json:"error,omitempty"`

	// rest lines: At is when the reply arrived, SentAt when the request left. Response is the
	// raw reply body, JSON null for 204.
	Method   string          `json:"method,omitempty"`
	Path     string          `json:"path,omitempty"`
	Request  json.RawMessage `json:"request,omitempty"`
	Status   int             `json:"status,omitempty"`
	SentAt   time.Time       `json:"sent_at,omitzero"`
	Response json.RawMessage `json:"response,omitempty"`
}
