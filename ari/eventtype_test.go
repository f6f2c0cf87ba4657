package ari_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/callbackd/callbackd/ari"
)

// The monitor's event filter asks Asterisk for types the connection then delivers: a type in
// the filter that the connection does not know would be sent over the socket only to be
// counted as unknown and dropped.
func TestEveryFilteredEventTypeIsDelivered(t *testing.T) {
	for _, typ := range ari.DefaultMonitorEvents {
		if !ari.KnownEventType(typ) {
			t.Errorf("%s is in DefaultMonitorEvents but not a known event type", typ)
		}
	}
}

// Every type a real Asterisk sent in the recordings is one the connection delivers: a missing
// constant would make the connection drop, as unknown, an event Asterisk really sends.
func TestRecordedEventTypesAreKnown(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "traces", "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings (%v)", err)
	}
	seen := map[ari.EventType]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var l struct {
				Event *struct {
					Type ari.EventType `json:"type"`
				} `json:"event"`
			}
			if json.Unmarshal(line, &l) == nil && l.Event != nil {
				seen[l.Event.Type] = true
			}
		}
	}
	for typ := range seen {
		if !ari.KnownEventType(typ) {
			t.Errorf("the recordings hold %s events, which is not a known event type", typ)
		}
	}
	if len(seen) == 0 {
		t.Errorf("no events in the recordings")
	}
}
