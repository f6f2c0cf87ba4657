package detect

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/trace"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// BenchmarkRecordings measures the detector alone (events already decoded) on every recorded
// call, each round replayed as another Asterisk so the same recorded ids are new calls again.
func BenchmarkRecordings(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	var events []*ari.Event
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := trace.Read(bytes.NewReader(data), "cbmon", func(ev *ari.Event) { events = append(events, ev) }); err != nil {
			b.Fatal(err)
		}
	}
	rec := &recorder{}
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	det := New(Options{Sink: rec, Clock: clk})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Each round is another Asterisk. The ids cycle through 26 names, and a server
		// remembers the channels of its ended calls (late events must not revive them), so
		// each round moves the clock past the sweep: a server quiet that long with no call
		// is forgotten, and its name comes back as a new Asterisk. Without that, round 27
		// met server A's memory and every event was skipped as late.
		clk.Advance(sweepInterval + time.Second)
		id := string(rune('A' + i%26))
		for _, ev := range events {
			ev.AsteriskID = id
			det.HandleEvent(ev)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
	if det.Tracked() != 0 {
		b.Errorf("%d calls left tracked", det.Tracked())
	}
}

// countingMemory counts what the detector hands its memory, then hands it on.
type countingMemory struct {
	next         Memory
	keeps, drops int
	bytes        int
}

func (m *countingMemory) Keep(a, l string, rec []byte) {
	m.keeps++
	m.bytes += len(rec)
	m.next.Keep(a, l, rec)
}
func (m *countingMemory) Drop(a, l string) { m.drops++; m.next.Drop(a, l) }

// BenchmarkRecordingsKeptInRedis is BenchmarkRecordings with the calls kept in a real Redis:
// the detector's own cost of noting what changed, plus writing it (one pipeline after each
// recording, as the writer goroutine would batch a busy second). Reported per customer call
// that could owe a callback (one kept call): records written and their size.
func BenchmarkRecordingsKeptInRedis(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	var recordings [][]*ari.Event
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		var events []*ari.Event
		if _, err := trace.Read(bytes.NewReader(data), "cbmon", func(ev *ari.Event) { events = append(events, ev) }); err != nil {
			b.Fatal(err)
		}
		recordings = append(recordings, events)
	}
	rdb := redistest.Start(b, redistest.Options{}).Client()
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	store := queue.NewCallMemory(rdb, queue.CallMemoryOptions{Clock: clk})
	mem := &countingMemory{next: store}
	det := New(Options{Sink: &recorder{}, Clock: clk, Memory: mem})
	ctx := context.Background()
	kept := map[string]bool{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clk.Advance(sweepInterval + time.Second)
		id := string(rune('A' + i%26))
		for _, events := range recordings {
			for _, ev := range events {
				ev.AsteriskID = id
				det.HandleEvent(ev)
			}
			if err := store.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		if i == 0 {
			for _, k := range rdb.Keys(ctx, "callbackd:call*").Val() {
				kept[k] = true
			}
		}
	}
	b.StopTimer()
	st := store.Stats()
	calls := float64(st.Dropped) // every kept call ends, and is dropped, once
	b.ReportMetric(float64(mem.keeps)/calls, "records/call")
	b.ReportMetric(float64(mem.bytes)/float64(mem.keeps), "bytes/record")
	b.ReportMetric(calls/float64(b.N), "kept-calls/op")
	if len(kept) != 0 || det.Tracked() != 0 {
		b.Errorf("calls left: %d tracked, %v in Redis", det.Tracked(), kept)
	}
}

type discardMemory struct{}

func (discardMemory) Keep(string, string, []byte) {}
func (discardMemory) Drop(string, string)         {}

// BenchmarkRecordingsNoted is the detector's own share of keeping calls: BenchmarkRecordings
// with a memory that takes the records and writes nothing (compare the two).
func BenchmarkRecordingsNoted(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	var events []*ari.Event
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := trace.Read(bytes.NewReader(data), "cbmon", func(ev *ari.Event) { events = append(events, ev) }); err != nil {
			b.Fatal(err)
		}
	}
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	mem := &countingMemory{next: discardMemory{}}
	det := New(Options{Sink: &recorder{}, Clock: clk, Memory: mem})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clk.Advance(sweepInterval + time.Second)
		id := string(rune('A' + i%26))
		for _, ev := range events {
			ev.AsteriskID = id
			det.HandleEvent(ev)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(mem.drops)/float64(b.N), "kept-calls/op")
}
