package daemon_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/api"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/web"
)

// The HTTP server closes with the daemon: an open event stream (a CRM following the API's, a
// supervisor page following its own) is ended when Run returns, so the client resumes at
// another daemon with its Last-Event-ID, rather than left open on a daemon that has stopped.
func TestAnOpenEventStreamEndsWhenTheDaemonStops(t *testing.T) {
	for _, path := range []string{api.EventsPath, web.EventsPath} {
		t.Run(path, func(t *testing.T) { eventStreamEndsWithTheDaemon(t, path) })
	}
}

func eventStreamEndsWithTheDaemon(t *testing.T, path string) {
	pbx, clk := daemontest.StartPBX(t)
	cfg, err := config.Parse([]byte(demo.ConfigYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	rdb := redistest.Start(t, redistest.Options{}).Client()
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clk, Logger: zap.NewNop(), Instance: "test", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	base := "http://" + d.HTTPAddr()
	daemontest.WaitUntil(t, "the daemon to serve", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		_, _ = io.Copy(io.Discard, resp.Body)
	}()

	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	ran <- nil // the deferred cleanup waits once more
	select {
	case <-ended:
	case <-time.After(20 * time.Second): // only guards against a hang
		t.Fatal("the event stream is still open after Run returned")
	}
}
