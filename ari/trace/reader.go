package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/callbackd/callbackd/ari"
)

// maxLineErrors bounds how many malformed lines Stats keeps the details of.
const maxLineErrors = 1000

// Stats says what Read did with a recording.
type Stats struct {
	Lines     int         // non-empty lines read
	Events    int         // events handed to fn
	Skipped   int         // well-formed lines of another kind or application
	Malformed int         // lines that are not a recording line or whose event does not decode
	Errors    []LineError // the first malformed lines, with why
}

// LineError is one malformed line of a recording.
type LineError struct {
	Line int // 1-based, counting empty lines too, as an editor does
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e LineError) Unwrap() error { return e.Err }

// head is the part of a Line that reading acts on. Only it is decoded, so a line whose seq, at
// or REST fields another recorder spelt differently still replays.
type head struct {
	Kind  Kind            `json:"kind"`
	App   string          `json:"app"`
	URL   string          `json:"url"`
	Event json.RawMessage `json:"event"`
}

// Read reads a recording and calls fn with every event that app received, in order.
// Lines of other kinds (rest, ws, note, kinds not known yet) and of other applications are
// skipped; a malformed line is counted and listed, never fatal. The error is for reading only.
func Read(r io.Reader, app string, fn func(*ari.Event)) (Stats, error) {
	var st Stats
	err := scanLines(r, func(n int, line []byte) {
		st.Lines++
		var h head
		if err := json.Unmarshal(line, &h); err != nil {
			st.malformed(n, fmt.Errorf("not a recording line: %w", err))
			return
		}
		if h.Kind != KindEvent || h.App != app {
			st.Skipped++
			return
		}
		if len(h.Event) == 0 {
			st.malformed(n, errors.New(`event line without "event"`))
			return
		}
		ev, err := ari.Decode(h.Event)
		if err != nil {
			st.malformed(n, err)
			return
		}
		st.Events++
		fn(ev)
	})
	return st, err
}

func (st *Stats) malformed(line int, err error) {
	st.Malformed++
	if len(st.Errors) < maxLineErrors {
		st.Errors = append(st.Errors, LineError{Line: line, Err: err})
	}
}

// Apps lists the applications of a recording: Monitor are those whose socket subscribed to
// everything (ws lines with subscribeAll=true), Events every application that received events,
// in order of first appearance.
type Apps struct {
	Monitor []string
	Events  []string
}

// ScanApps reads a recording for its applications; malformed lines are ignored here (Read
// reports them).
func ScanApps(r io.Reader) (Apps, error) {
	var apps Apps
	seen := map[string]bool{}
	err := scanLines(r, func(_ int, line []byte) {
		var h head
		if json.Unmarshal(line, &h) != nil || h.App == "" {
			return
		}
		switch h.Kind {
		case KindWS:
			if strings.Contains(h.URL, "subscribeAll=true") && !slices.Contains(apps.Monitor, h.App) {
				apps.Monitor = append(apps.Monitor, h.App)
			}
		case KindEvent:
			if !seen[h.App] {
				seen[h.App] = true
				apps.Events = append(apps.Events, h.App)
			}
		}
	})
	return apps, err
}

func scanLines(r io.Reader, fn func(n int, line []byte)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		fn(n, line)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading recording after line %d: %w", n, err)
	}
	return nil
}
