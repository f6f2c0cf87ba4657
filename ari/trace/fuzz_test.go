package trace_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/trace"
)

// FuzzRead: whatever a file holds, reading it accounts for every non-empty line exactly once
// and names each malformed one by a line number the file has; never a panic.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		lines := bytes.SplitAfter(data, []byte("\n"))
		f.Add(bytes.Join(lines[:min(12, len(lines))], nil))
	}
	f.Add([]byte("{\"kind\":\"event\",\"app\":\"cbmon\",\"event\":{}}\n\n{\"kind\":\"event\",\"app\":\"cbmon\"}\nnot json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		events := 0
		st, err := trace.Read(bytes.NewReader(data), "cbmon", func(*ari.Event) { events++ })
		if err != nil {
			return
		}
		if st.Events != events || st.Events+st.Skipped+st.Malformed != st.Lines || len(st.Errors) != st.Malformed {
			t.Fatalf("stats %+v with %d events handed on", st, events)
		}
		n := bytes.Count(data, []byte("\n")) + 1
		for _, e := range st.Errors {
			if e.Line < 1 || e.Line > n || e.Err == nil {
				t.Fatalf("error %v names no line of the %d", e, n)
			}
		}
		if _, err := trace.ScanApps(bytes.NewReader(data)); err != nil {
			t.Fatalf("ScanApps failed where Read did not: %v", err)
		}
	})
}
