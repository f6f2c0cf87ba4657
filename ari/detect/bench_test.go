package detect

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/trace"
	"github.com/callbackd/callbackd/internal/clock"
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
