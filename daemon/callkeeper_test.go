package daemon

import (
	"slices"
	"testing"

	"github.com/callbackd/callbackd/ari/detect"
)

// What the keeper passes on to the call memory: a call's drop waits for every request of
// the call to be settled, whatever the intake did with it; a request without a call (the API,
// a test) holds nothing back.
func TestTheCallKeeperDropsACallOnceItsRequestsAreSettled(t *testing.T) {
	call := detect.Request{AsteriskID: "pbx", LinkedID: "1700000000.1", Number: "+31201234501"}
	other := detect.Request{AsteriskID: "pbx", LinkedID: "1700000000.2", Number: "+31201234502"}
	noCall := detect.Request{Number: "+31201234503"}
	steps := []struct {
		name  string
		do    func(k *callKeeper)
		drops []string // the memory's drops so far
	}{
		{"two requests of a call, then its drop: held", func(k *callKeeper) {
			k.Request(call)
			k.Request(call)
			k.Drop(call.AsteriskID, call.LinkedID)
		}, nil},
		{"the first request stored: still held for the second", func(k *callKeeper) { k.settled(call) }, nil},
		{"the second refused for good: dropped", func(k *callKeeper) { k.settled(call) }, []string{"1700000000.1"}},
		{"a call without requests pending: dropped at once", func(k *callKeeper) { k.Drop(other.AsteriskID, other.LinkedID) },
			[]string{"1700000000.1", "1700000000.2"}},
		{"a request without a call holds nothing and its settling drops nothing", func(k *callKeeper) {
			k.Request(noCall)
			k.settled(noCall)
			k.settled(other) // settled twice, or never asked: nothing to do
		}, []string{"1700000000.1", "1700000000.2"}},
	}
	sink, mem := &sinkRecorder{}, &memoryRecorder{}
	k := newCallKeeper(sink, mem)
	for _, s := range steps {
		s.do(k)
		if !slices.Equal(mem.drops, s.drops) {
			t.Fatalf("%s: drops %v; want %v", s.name, mem.drops, s.drops)
		}
	}
	if sink.requests != 3 {
		t.Errorf("the sink got %d requests; want every one (3)", sink.requests)
	}
	if len(k.waiting) != 0 {
		t.Errorf("the keeper still waits for %v", k.waiting)
	}
}

type sinkRecorder struct{ requests int }

func (s *sinkRecorder) Request(detect.Request) { s.requests++ }
func (s *sinkRecorder) Reached(detect.Reach)   {}

type memoryRecorder struct{ drops []string }

func (m *memoryRecorder) Keep(string, string, []byte)      {}
func (m *memoryRecorder) Drop(asteriskID, linkedID string) { m.drops = append(m.drops, linkedID) }
