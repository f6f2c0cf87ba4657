package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/callbackd/callbackd/internal/clock"
)

// Writer writes a recording. It numbers and timestamps the lines itself, under its lock, so
// that seq and at follow the order of the file even when several sockets write at once.
// It is safe for concurrent use.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	clk clock.Clock
	seq int
	err error
}

// NewWriter returns a Writer whose lines are timestamped by clk.
func NewWriter(w io.Writer, clk clock.Clock) *Writer { return &Writer{w: w, clk: clk} }

// Write sets l.Seq and l.At and writes l as one line, in one write: a recording is read while
// it is being made (tail -f), so nothing waits in a buffer. After a failure nothing more is
// written, and Write and Err return that first error: a recording with a hole in it would
// look complete.
func (w *Writer) Write(l Line) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.seq++
	l.Seq, l.At = w.seq, w.clk.Now().UTC()
	data, err := json.Marshal(l)
	if err != nil {
		w.err = fmt.Errorf("encoding trace line %d: %w", l.Seq, err)
		return w.err
	}
	if _, err := w.w.Write(append(data, '\n')); err != nil {
		w.err = fmt.Errorf("writing trace line %d: %w", l.Seq, err)
	}
	return w.err
}

// Err returns the first error of Write, or nil.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
