package demo_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"testing"
	"time"

	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/redistest"
)

// Served, the demo prints the supervisor page's address with a token made for the run, and
// the address signs a browser in.
func TestAServedDemoPrintsTheSupervisorPageAndItsToken(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	var out daemontest.Output
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() {
		ran <- demo.Run(ctx, demo.Settings{RedisAddr: srv.Addr(), Speed: 50, Listen: "127.0.0.1:0", Serve: true}, &out)
	}()
	t.Cleanup(func() { cancel(); <-ran })

	pageRE := regexp.MustCompile(`The supervisor page: (http://127\.0\.0\.1:\d+/\?token=([0-9a-f]{32})) \(token ([0-9a-f]{32}),`)
	var m []string
	daemontest.WaitUntil(t, "the demo to print the supervisor page", func() bool {
		m = pageRE.FindStringSubmatch(out.String())
		return m != nil
	})
	if m[2] != m[3] {
		t.Errorf("the address carries token %s, the line names %s", m[2], m[3])
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body.Bytes(), []byte("Signed in as")) {
		t.Errorf("GET %s: %d, not signed in:\n%s", m[1], resp.StatusCode, body.String())
	}
}
