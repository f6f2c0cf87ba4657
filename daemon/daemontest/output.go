package daemontest

import (
	"bytes"
	"sync"
)

// Output collects what a daemon, a demo or a subcommand writes (a log, a timeline, stdout)
// from its goroutines while the test reads it.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
