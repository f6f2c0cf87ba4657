package trace_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/trace"
	"github.com/callbackd/callbackd/internal/clock"
)

const tracesDir = "../testdata/traces"

func TestRead(t *testing.T) {
	rec := strings.Join([]string{
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
	st, err := trace.Read(strings.NewReader(rec), "mon", func(ev *ari.Event) { got = append(got, ev.Type) })
	if err != nil {
		t.Fatalf("Read: %v", err)
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

	apps, err := trace.ScanApps(strings.NewReader(rec))
	if err != nil {
		t.Fatalf("ScanApps: %v", err)
	}
	if !slices.Equal(apps.Monitor, []string{"mon"}) || !slices.Equal(apps.Events, []string{"mon", "ctl"}) {
		t.Errorf("apps %+v", apps)
	}
}

// An administrator reads the skipped lines on stderr: each must say where it is and what is
// wrong with it.
func TestAMalformedLineSaysWhereAndWhy(t *testing.T) {
	rec := strings.Join([]string{
		`{"seq":1,"kind":"note","text":"fine"}`,
		`{"seq":2,"kind":"event","app":"mon"`,
		``,
		`{"seq":4,"kind":"event","app":"mon"}`,
		`{"seq":5,"kind":"event","app":"mon","event":{"type":""}}`,
		`{"seq":6,"kind":"event","app":"mon","event":[1]}`,
	}, "\n")
	st, err := trace.Read(strings.NewReader(rec), "mon", func(*ari.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line int
		text string
	}{
		{2, "line 2: not a recording line: unexpected end of JSON input"},
		{4, `line 4: event line without "event"`},
		{5, `line 5: malformed ARI event: no "type"`},
		{6, "line 6: malformed ARI event: "},
	}
	if len(st.Errors) != len(want) {
		t.Fatalf("errors %v; want %d", st.Errors, len(want))
	}
	for i, w := range want {
		e := st.Errors[i]
		if e.Line != w.line || !strings.HasPrefix(e.Error(), w.text) {
			t.Errorf("error %d: line %d %q; want line %d %q", i, e.Line, e.Error(), w.line, w.text)
		}
	}
	if !errors.Is(st.Errors[2], ari.ErrMalformed) {
		t.Errorf("a LineError unwraps to what was wrong: %v", st.Errors[2])
	}
}

func TestReadRefusesAnOverlongLine(t *testing.T) {
	long := `{"kind":"note","text":"` + strings.Repeat("x", trace.MaxLine) + `"}`
	_, err := trace.Read(strings.NewReader(long), "mon", func(*ari.Event) {})
	if err == nil {
		t.Fatalf("a line over %d bytes must be an error", trace.MaxLine)
	}
}

// What the writer writes the reader reads back: the same events, byte for byte, and the
// recorder's socket as the monitor.
func TestWriteThenRead(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	var buf bytes.Buffer
	w := trace.NewWriter(&buf, clk)
	events := []string{
		`{"type":"ChannelCreated","timestamp":"2026-11-22T12:00:00.000+0000","channel":{"id":"a","caller":{"name":"Jansen & Zn","number":"+31201234501"}}}`,
		`{"type":"ChannelDestroyed","timestamp":"2026-11-22T12:00:01.500+0000","channel":{"id":"a"},"cause":16}`,
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Write(trace.Line{Kind: trace.KindWS, App: "rec", State: "connected", URL: "/ari/events?app=rec&subscribeAll=true"}))
	for _, e := range events {
		clk.Advance(250 * time.Millisecond)
		must(w.Write(trace.Line{Kind: trace.KindEvent, App: "rec", Event: json.RawMessage(e)}))
	}
	must(w.Write(trace.Line{Kind: trace.KindNote, Text: "done"}))
	must(w.Err())

	wantText := `{"seq":1,"at":"2026-11-22T12:00:00Z","kind":"ws","app":"rec","state":"connected","url":"/ari/events?app=rec\u0026subscribeAll=true"}
{"seq":2,"at":"2026-11-22T12:00:00.25Z","kind":"event","app":"rec","event":` + strings.ReplaceAll(events[0], "&", `\u0026`) + `}
{"seq":3,"at":"2026-11-22T12:00:00.5Z","kind":"event","app":"rec","event":` + events[1] + `}
{"seq":4,"at":"2026-11-22T12:00:00.5Z","kind":"note","text":"done"}
`
	if buf.String() != wantText {
		t.Errorf("written:\n%s\nwant:\n%s", buf.String(), wantText)
	}

	apps, err := trace.ScanApps(bytes.NewReader(buf.Bytes()))
	if err != nil || !slices.Equal(apps.Monitor, []string{"rec"}) || !slices.Equal(apps.Events, []string{"rec"}) {
		t.Errorf("apps %+v, err %v", apps, err)
	}
	var got []*ari.Event
	st, err := trace.Read(bytes.NewReader(buf.Bytes()), "rec", func(ev *ari.Event) { got = append(got, ev) })
	if err != nil || st.Lines != 4 || st.Events != 2 || st.Skipped != 2 || st.Malformed != 0 {
		t.Fatalf("read back: %+v, err %v", st, err)
	}
	for i, ev := range got {
		var want, have any
		_ = json.Unmarshal([]byte(events[i]), &want)
		_ = json.Unmarshal(ev.Raw, &have)
		if fmt.Sprint(want) != fmt.Sprint(have) {
			t.Errorf("event %d read back as %s; want %s", i, ev.Raw, events[i])
		}
	}
	if got[0].Caller != nil || got[0].Channel.Caller.Name != "Jansen & Zn" || *got[1].Cause != 16 {
		t.Errorf("decoded events %+v %+v", got[0], got[1])
	}
}

// Lines are numbered in the order they land in the file, whoever writes them.
func TestConcurrentWritesAreNumberedInFileOrder(t *testing.T) {
	var buf bytes.Buffer
	w := trace.NewWriter(&buf, clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				_ = w.Write(trace.Line{Kind: trace.KindNote, Text: fmt.Sprint("writer ", i)})
			}
		})
	}
	wg.Wait()
	for i, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		var l trace.Line
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Seq != i+1 {
			t.Fatalf("line %d is %s (err %v); want seq %d", i+1, line, err, i+1)
		}
	}
}

type failingWriter struct{ writes int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.writes++
	return 0, errors.New("disk full")
}

// After a failed write the recording has a hole: nothing more is written, and every later
// Write and Err report the first failure.
func TestAWriteErrorSticks(t *testing.T) {
	fw := &failingWriter{}
	w := trace.NewWriter(fw, clock.NewFake(time.Time{}))
	err := w.Write(trace.Line{Kind: trace.KindNote, Text: "a"})
	if err == nil || !strings.Contains(err.Error(), "writing trace line 1: disk full") {
		t.Fatalf("first write: %v", err)
	}
	if err2 := w.Write(trace.Line{Kind: trace.KindNote, Text: "b"}); err2 != err {
		t.Errorf("second write: %v; want the first error", err2)
	}
	if w.Err() != err || fw.writes != 1 {
		t.Errorf("Err %v after %d writes; want the first error after 1", w.Err(), fw.writes)
	}
}

func TestRecordingsHaveTheirMonitorApp(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		apps, err := trace.ScanApps(fh)
		fh.Close()
		if err != nil || !slices.Equal(apps.Monitor, []string{"cbmon"}) {
			t.Errorf("%s: apps %+v, err %v", filepath.Base(f), apps, err)
		}
	}
}

// The real recordings are in this format: every line is a Line that encodes back to the same
// JSON, no field lost or added, and every event of both sockets reads back.
func TestTheRecordingsReadBack(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings in %s (%v)", tracesDir, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		events := map[string]int{}
		for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			var l trace.Line
			if err := json.Unmarshal(line, &l); err != nil {
				t.Errorf("%s line %d: %v", name, i+1, err)
				continue
			}
			if l.Seq != i+1 || l.At.IsZero() {
				t.Errorf("%s line %d: seq %d at %v", name, i+1, l.Seq, l.At)
			}
			// Not byte for byte: the recorder of this set wrote the ws fields in no fixed
			// order and did not escape HTML characters as json.Marshal does.
			again, err := json.Marshal(l)
			var was, is any
			if err != nil || json.Unmarshal(line, &was) != nil || json.Unmarshal(again, &is) != nil ||
				!reflect.DeepEqual(was, is) {
				t.Errorf("%s line %d encodes back as\n%s\nnot\n%s", name, i+1, again, line)
			}
			if l.Kind == trace.KindEvent {
				events[l.App]++
			}
		}
		for _, app := range []string{"cbmon", "cbctl"} {
			st, err := trace.Read(bytes.NewReader(data), app, func(*ari.Event) {})
			if err != nil || st.Malformed != 0 || st.Events != events[app] {
				t.Errorf("%s, app %s: read %+v, err %v; want %d events, none malformed", name, app, st, err, events[app])
			}
		}
	}
}
