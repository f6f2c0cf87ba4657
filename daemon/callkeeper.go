package daemon

import (
	"sync"

	"github.com/callbackd/callbackd/ari/detect"
)

// callKeeper stands between the detector and both the intake (detect.Sink) and the call
// memory (detect.Memory): a call whose requests the intake has not stored yet stays in Redis
// until they are. Otherwise the record of an ended call could be deleted while its request
// still waits in this process's memory for Redis (the two are written independently), and a
// daemon killed then loses the promise: the next one finds no call to finish. With the record
// kept, the next daemon restores the call, finds it over at its resync and asks again (the
// store's once-per-call marker makes that one promise if the first request got through).
type callKeeper struct {
	sink   detect.Sink
	memory detect.Memory

	mu      sync.Mutex
	waiting map[keptCall]*keptWait // calls with requests handed to the sink, not yet settled
}

type keptCall struct{ asterisk, linkedID string }

// keptWait is what a call waits for: its requests not yet settled, and whether its drop came
// meanwhile.
type keptWait struct {
	requests int
	dropped  bool
}

func newCallKeeper(sink detect.Sink, memory detect.Memory) *callKeeper {
	return &callKeeper{sink: sink, memory: memory, waiting: map[keptCall]*keptWait{}}
}

// Request implements detect.Sink.
func (k *callKeeper) Request(r detect.Request) {
	if r.LinkedID != "" {
		c := keptCall{r.AsteriskID, r.LinkedID}
		k.mu.Lock()
		w := k.waiting[c]
		if w == nil {
			w = &keptWait{}
			k.waiting[c] = w
		}
		w.requests++
		k.mu.Unlock()
	}
	k.sink.Request(r)
}

// Reached implements detect.Sink.
func (k *callKeeper) Reached(r detect.Reach) { k.sink.Reached(r) }

// Keep implements detect.Memory.
func (k *callKeeper) Keep(asteriskID, linkedID string, record []byte) {
	k.memory.Keep(asteriskID, linkedID, record)
}

// Drop implements detect.Memory: held while a request of the call is not settled.
func (k *callKeeper) Drop(asteriskID, linkedID string) {
	k.mu.Lock()
	if w := k.waiting[keptCall{asteriskID, linkedID}]; w != nil {
		w.dropped = true
		k.mu.Unlock()
		return
	}
	k.mu.Unlock()
	k.memory.Drop(asteriskID, linkedID)
}

// settled is told that the intake is done with a request (stored, merged, a duplicate, or
// refused for good); the call's record goes once all its requests are.
func (k *callKeeper) settled(r detect.Request) {
	c := keptCall{r.AsteriskID, r.LinkedID}
	k.mu.Lock()
	w := k.waiting[c]
	if w == nil || r.LinkedID == "" {
		k.mu.Unlock()
		return
	}
	if w.requests--; w.requests > 0 {
		k.mu.Unlock()
		return
	}
	delete(k.waiting, c)
	k.mu.Unlock()
	if w.dropped {
		k.memory.Drop(c.asterisk, c.linkedID)
	}
}
