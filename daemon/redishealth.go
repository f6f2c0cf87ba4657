package daemon

import (
	"context"
	"net"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/netcause"
)

// dialWatch remembers why the last dial to Redis failed. go-redis retries a refused dial
// several times inside one command, so what reaches the caller of a bounded command is often
// only "context deadline exceeded"; /readyz says what the operator must fix instead.
type dialWatch struct {
	mu   sync.Mutex
	last error // nil after a dial succeeds
}

func (w *dialWatch) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		w.mu.Lock()
		w.last = err
		w.mu.Unlock()
		return conn, err
	}
}

func (w *dialWatch) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (w *dialWatch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// explain describes err, a failed command, by its cause; when the command says no more than
// that it ran out of time, by the cause of the dial that failed under it.
func (w *dialWatch) explain(err error) string {
	if c := netcause.Of(err); c != netcause.Unknown && c != netcause.Timeout {
		return netcause.Describe(err)
	}
	w.mu.Lock()
	dial := w.last
	w.mu.Unlock()
	if dial != nil {
		return netcause.Describe(dial)
	}
	return netcause.Describe(err)
}
