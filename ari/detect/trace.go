package detect

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/callbackd/callbackd/ari"
)

// MaxTraceLine bounds one line of a recording; a longer line is an error, not a malformed event.
const MaxTraceLine = 16 << 20

// maxLineErrors bounds how many malformed lines TraceStats keeps the details of.
const maxLineErrors = 1000

// TraceStats says what ReadTrace did with a recording.
type TraceStats struct {
	Lines     int         // non-empty lines read
	Events    int         // events handed to fn
	Skipped   int         // well-formed lines of another kind or application
	Malformed int         // lines that are not a recording line or whose event does not decode
	Errors    []LineError // the first malformed lines, with why
}

// LineError is one malformed line of a recording.
type LineError struct {
	Line int
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// traceLine is one line of a recording: {"seq","at","kind","app","event",...}.
type traceLine struct {
	Kind  string          `json:"kind"`
	App   string          `json:"app"`
	URL   string          `json:"url"`
	Event json.RawMessage `json:"event"`
}

// ReadTrace reads a recording and calls fn with every event that app received, in order.
// Lines of other kinds (rest, ws, note, kinds not known yet) and of other applications are
// skipped; a malformed line is counted and listed, never fatal. The error is for reading only.
func ReadTrace(r io.Reader, app string, fn func(*ari.Event)) (TraceStats, error) {
	var st TraceStats
	err := scanLines(r, func(n int, line []byte) {
		st.Lines++
		var tl traceLine
		if err := json.Unmarshal(line, &tl); err != nil {
			st.malformed(n, fmt.Errorf("not a recording line: %w", err))
			return
		}
		if tl.Kind != "event" || tl.App != app {
			st.Skipped++
			return
		}
		if len(tl.Event) == 0 {
			st.malformed(n, errors.New(`event line without "event"`))
			return
		}
		ev, err := ari.Decode(tl.Event)
		if err != nil {
			st.malformed(n, err)
			return
		}
		st.Events++
		fn(ev)
	})
	return st, err
}

func (st *TraceStats) malformed(line int, err error) {
	st.Malformed++
	if len(st.Errors) < maxLineErrors {
		st.Errors = append(st.Errors, LineError{Line: line, Err: err})
	}
}

// TraceApps lists the applications of a recording: Monitor are those whose socket subscribed
// to everything (ws lines with subscribeAll=true), Events every application that received
// events, in order of first appearance.
type TraceApps struct {
	Monitor []string
	Events  []string
}

// ScanTraceApps reads a recording for its applications; malformed lines are ignored here
// (ReadTrace reports them).
func ScanTraceApps(r io.Reader) (TraceApps, error) {
	var apps TraceApps
	seen := map[string]bool{}
	err := scanLines(r, func(_ int, line []byte) {
		var tl traceLine
		if json.Unmarshal(line, &tl) != nil || tl.App == "" {
			return
		}
		switch tl.Kind {
		case "ws":
			if strings.Contains(tl.URL, "subscribeAll=true") && !contains(apps.Monitor, tl.App) {
				apps.Monitor = append(apps.Monitor, tl.App)
			}
		case "event":
			if !seen[tl.App] {
				seen[tl.App] = true
				apps.Events = append(apps.Events, tl.App)
			}
		}
	})
	return apps, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func scanLines(r io.Reader, fn func(n int, line []byte)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxTraceLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		fn(n, line)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading recording after line %d: %w", n, err)
	}
	return nil
}
