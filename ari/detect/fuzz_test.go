package detect

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/trace"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// FuzzDecodeAndDetect feeds arbitrary event sequences (one JSON event per line) to a detector:
// whatever arrives is counted and skipped or followed, never a panic, never a request that
// the dialer could not act on, and a restart resync always leaves nothing tracked.
func FuzzDecodeAndDetect(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var events [][]byte
		for _, line := range bytes.Split(data, []byte("\n")) {
			var tl trace.Line
			if json.Unmarshal(line, &tl) == nil && tl.Kind == trace.KindEvent && tl.App == "cbmon" {
				events = append(events, tl.Event)
			}
		}
		f.Add(bytes.Join(events, []byte("\n")))
		// Short windows too: the mutator does far more with a few events than with a call.
		for i := 0; i < len(events); i += 8 {
			f.Add(bytes.Join(events[i:min(i+8, len(events))], []byte("\n")))
		}
	}
	f.Add([]byte(`{"type":"Dial","caller":{"id":"a","channelvars":{"CHANNEL(linkedid)":"a"}},"peer":{"id":"a","name":"Local/;2"}}`))
	f.Add([]byte("{\"type\":\"ChannelDestroyed\",\"channel\":{\"id\":\"x\"}}\nnot json\n{}"))

	f.Fuzz(func(t *testing.T, data []byte) {
		rec := &recorder{}
		clk := clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
		det := New(Options{Sink: rec, Clock: clk})
		servers := map[string]bool{}
		decoded := uint64(0)
		for _, line := range bytes.Split(data, []byte("\n")) {
			ev, err := ari.Decode(line)
			if err != nil {
				continue
			}
			decoded++
			servers[ev.AsteriskID] = true
			det.HandleEvent(ev)
			clk.Advance(time.Minute)
		}
		for id := range servers {
			det.Resync(ari.Snapshot{AsteriskID: id, Restarted: true, At: clk.Now()})
		}
		if n := det.Tracked(); n != 0 {
			t.Errorf("%d calls tracked after every server restarted", n)
		}
		st := det.Stats()
		if st.Events != decoded {
			t.Errorf("counted %d events, handed %d", st.Events, decoded)
		}
		if st.Requests != uint64(len(rec.requests)) || st.Reaches != uint64(len(rec.reached)) {
			t.Errorf("stats %+v disagree with the sink (%d requests, %d reaches)", st, len(rec.requests), len(rec.reached))
		}
		for _, r := range rec.requests {
			if _, err := phone.ParseE164(r.Number); err != nil {
				t.Errorf("request with an uncallable number: %+v (%v)", r, err)
			}
			if r.Target == "" || (r.Reason != queue.ReasonVoicemail && r.Reason != queue.ReasonUnansweredTransfer) {
				t.Errorf("request without target or with an unknown reason: %+v", r)
			}
		}
	})
}
