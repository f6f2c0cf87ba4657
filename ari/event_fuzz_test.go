package ari

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: any input either decodes to an event with a type, keeping the bytes as received,
// or fails with ErrMalformed; never a panic.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "traces", "*.jsonl"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for i, line := range bytes.Split(data, []byte("\n")) {
			var tl struct {
				Event json.RawMessage `json:"event"`
			}
			// Every fifth event keeps the corpus small and still covers every type.
			if json.Unmarshal(line, &tl) == nil && len(tl.Event) > 0 && i%5 == 0 {
				f.Add([]byte(tl.Event))
			}
		}
	}
	f.Add([]byte(`{"type":""}`))
	f.Add([]byte(`{"type":"Dial","cause":"16"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if ev != nil {
				t.Fatalf("event returned with an error")
			}
			return
		}
		if ev.Type == "" {
			t.Fatalf("decoded an event without a type")
		}
		if !bytes.Equal(ev.Raw, data) {
			t.Fatalf("Raw differs from the input")
		}
		if _, err := ev.Time(); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("Time error %v does not wrap ErrMalformed", err)
		}
		_ = ev.Channel.LinkedID()
	})
}
