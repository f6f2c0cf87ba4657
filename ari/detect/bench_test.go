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
// call, each replayed under a fresh linkedid so calls never collide.
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
	det := New(Options{Sink: rec, Clock: clock.NewFake(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Each round is a different Asterisk, so the same recorded ids are new calls again.
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
