package detect

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/callbackd/callbackd/ari"
)

func TestReadTrace(t *testing.T) {
	trace := strings.Join([]string{
		`{"seq":1,"kind":"ws","app":"mon","state":"connected","url":"/ari/events?app=mon&subscribeAll=true"}`,
		`{"seq":2,"kind":"ws","app":"ctl","state":"connected","url":"/ari/events?app=ctl"}`,
		`{"seq":3,"kind":"note","text":"trunk: calls"}`,
		`{"seq":4,"kind":"event","app":"mon","event":{"type":"ChannelCreated","channel":{"id":"a"}}}`,
		`{"seq":5,"kind":"event","app":"ctl","event":{"type":"StasisStart","channel":{"id":"b"}}}`,
		`{"seq":6,"kind":"rest","method":"POST","path":"/ari/channels","status":200}`,
		`{"seq":7,"kind":"hologram","app":"mon"}`,
		`this is not json`,
		``,
		`{"seq":9,"kind":"event","app":"mon","event":{"no":"type"}}`,
		`{"seq":10,"kind":"event","app":"mon"}`,
		`{"seq":11,"kind":"event","app":"mon","event":{"type":"Dial","dialstatus":"ANSWER"}}`,
	}, "\n")
	var got []ari.EventType
	st, err := ReadTrace(strings.NewReader(trace), "mon", func(ev *ari.Event) { got = append(got, ev.Type) })
	if err != nil {
		t.Fatalf("ReadTrace: %v", err)
	}
	if want := []ari.EventType{ari.EventChannelCreated, ari.EventDial}; !slices.Equal(got, want) {
		t.Errorf("events handed on: %v, want %v", got, want)
	}
	if st.Lines != 11 || st.Events != 2 || st.Skipped != 6 || st.Malformed != 3 {
		t.Errorf("stats %+v: want 11 lines, 2 events, 6 skipped, 3 malformed", st)
	}
	var lines []int
	for _, e := range st.Errors {
		lines = append(lines, e.Line)
	}
	if want := []int{8, 10, 11}; !slices.Equal(lines, want) {
		t.Errorf("malformed lines %v, want %v (%v)", lines, want, st.Errors)
	}
	if !errors.Is(st.Errors[1].Err, ari.ErrMalformed) {
		t.Errorf("an event without type should wrap ari.ErrMalformed: %v", st.Errors[1].Err)
	}

	apps, err := ScanTraceApps(strings.NewReader(trace))
	if err != nil {
		t.Fatalf("ScanTraceApps: %v", err)
	}
	if !slices.Equal(apps.Monitor, []string{"mon"}) || !slices.Equal(apps.Events, []string{"mon", "ctl"}) {
		t.Errorf("apps %+v", apps)
	}
}

func TestReadTraceRefusesAnOverlongLine(t *testing.T) {
	long := `{"kind":"note","text":"` + strings.Repeat("x", MaxTraceLine) + `"}`
	_, err := ReadTrace(strings.NewReader(long), "mon", func(*ari.Event) {})
	if err == nil {
		t.Fatalf("a line over %d bytes must be an error", MaxTraceLine)
	}
}

func TestRecordingsHaveTheirMonitorApp(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		apps, err := ScanTraceApps(fh)
		fh.Close()
		if err != nil || !slices.Equal(apps.Monitor, []string{"cbmon"}) {
			t.Errorf("%s: apps %+v, err %v", filepath.Base(f), apps, err)
		}
	}
}
