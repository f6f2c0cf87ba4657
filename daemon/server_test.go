package daemon

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/internal/logmask"
)

// Every phase of an HTTP connection is bounded: a client that sends its headers or body
// slowly, or keeps an idle connection open, cannot hold the listener's resources for ever.
func TestTheHTTPServerBoundsEveryPhaseOfAConnection(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler(), zap.NewNop())
	for name, v := range map[string]int64{
		"ReadHeaderTimeout": int64(srv.ReadHeaderTimeout),
		"ReadTimeout":       int64(srv.ReadTimeout),
		"WriteTimeout":      int64(srv.WriteTimeout),
		"IdleTimeout":       int64(srv.IdleTimeout),
		"MaxHeaderBytes":    int64(srv.MaxHeaderBytes),
	} {
		if v <= 0 {
			t.Errorf("%s is unset: a slow or idle client could hold a connection for ever", name)
		}
	}
	if srv.ReadHeaderTimeout > srv.ReadTimeout {
		t.Errorf("ReadHeaderTimeout %v exceeds ReadTimeout %v", srv.ReadHeaderTimeout, srv.ReadTimeout)
	}
}

// What net/http logs of its own, such as a handler's panic, is a line of the daemon's log
// with its numbers masked, not plain text on stderr with the number in full.
func TestTheHTTPServersOwnErrorsGoToTheMaskedLog(t *testing.T) {
	var out daemontest.Output
	log := zap.New(logmask.Core(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(&out), zap.InfoLevel)))
	srv := newHTTPServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("calling +31201234567 went wrong")
	}), log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	if resp, err := http.Get("http://" + l.Addr().String() + "/"); err == nil {
		resp.Body.Close()
	}
	daemontest.WaitUntil(t, "the panic to be logged", func() bool { return strings.Contains(out.String(), "panic serving") })
	if got := out.String(); strings.Contains(got, "+31201234567") || !strings.HasPrefix(got, "{") {
		t.Errorf("net/http's own line is not a masked JSON line of the log: %s", got)
	}
}
