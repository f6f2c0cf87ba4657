package ari_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
)

// traceEvents returns the monitor-app events of a recorded call, as Asterisk sent them.
func traceEvents(b *testing.B, path string) [][]byte {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Kind  string          `json:"kind"`
			Event json.RawMessage `json:"event"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Kind == "event" && len(line.Event) > 0 {
			out = append(out, append([]byte(nil), line.Event...))
		}
	}
	if len(out) == 0 {
		b.Fatalf("no events in %s", path)
	}
	return out
}

type counter struct{ n atomic.Int64 }

func (c *counter) HandleEvent(*ari.Event) { c.n.Add(1) }
func (c *counter) Resync(ari.Snapshot)    {}

// BenchmarkEventPipeline measures socket → queue → decode → Handler for recorded events:
// how many events per second one Asterisk connection can take in.
func BenchmarkEventPipeline(b *testing.B) {
	trace := traceEvents(b, "testdata/traces/04-blind-transfer-noanswer-voicemail.jsonl")
	frames := make([][]byte, b.N)
	for i := range frames {
		frames[i] = trace[i%len(trace)]
	}
	f := newFakeEvents(b, frames, fakeBehaviour{})
	conn, err := ari.NewConn(ari.Options{Name: "bench", URL: f.URL + "/ari", Username: testUser,
		Password: testPassword, Clock: clock.NewFake(epoch)})
	if err != nil {
		b.Fatal(err)
	}
	h := &counter{}
	ctx, cancel := context.WithCancel(context.Background())
	b.ResetTimer()
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.Run(ctx, h, nil)
	}()
	defer func() { cancel(); <-done }()
	for h.n.Load() < int64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
