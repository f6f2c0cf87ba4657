package daemon

import (
	"net/http"
	"testing"
)

// Every phase of an HTTP connection is bounded: a client that sends its headers or body
// slowly, or keeps an idle connection open, cannot hold the listener's resources for ever.
func TestTheHTTPServerBoundsEveryPhaseOfAConnection(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler())
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
