package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/api/apiclient"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/redistest"
)

// From a shell, an operator makes a promise for a caller at the desk, finds it, moves it to
// tomorrow and cancels it — all through the running daemon's API, so the quote and the number
// checks are the daemon's own.
func TestPromiseCommandsGoThroughTheDaemonsAPI(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	pbx.SetEndpoint("PJSIP/1001", aritest.Answers(time.Second)) // Ria is free: reception has a quote
	cfg, err := config.Parse([]byte(demo.ConfigYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	const token = "cli-test-token-0123456789"
	cfg.HTTP.Token = config.Secret(token)
	rdb := redistest.Start(t, redistest.Options{}).Client()
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Clock: clk, Logger: zap.NewNop(), Instance: "test", Listen: "-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(func() { srv.Close(); cancel(); <-ran })

	cfgFile := filepath.Join(t.TempDir(), "callbackd.yml")
	if err := os.WriteFile(cfgFile, []byte(demo.ConfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	daemontest.WaitUntil(t, "ria free", func() bool {
		c := apiclient.Client{Base: srv.URL, Token: token}
		_, body, err := c.Do(context.Background(), "GET", "/agents", nil, nil, nil)
		return err == nil && regexp.MustCompile(`"id":"ria"[^}]*"state":"free"`).Match(body)
	})
	environ := []string{"CALLBACKD_HTTP_TOKEN=" + token}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		args = append(args[:1:1], append([]string{"-c", cfgFile, "--url", srv.URL}, args[1:]...)...)
		code := runPromiseWithEnv(context.Background(), args, environ, clk, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	// An absolute time: a retry repeats the request, and "+1h" would be read again a moment
	// later (the test's clock runs), a different body the key then refuses.
	notBefore := clk.Now().Add(time.Hour).Format(time.RFC3339)
	code, out, errOut := run("create", "--number", "020 123 4588", "--queue", "reception", "--not-before", notBefore, "--idempotency-key", "desk-1")
	m := regexp.MustCompile(`^promise (\w+) in reception for \+31201234588: made; deadline `).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("create: exit %d, %q, %q", code, out, errOut)
	}
	id := m[1]
	if code, out, _ := run("create", "--number", "020 123 4588", "--queue", "reception", "--not-before", notBefore, "--idempotency-key", "desk-1"); code != 0 || !strings.Contains(out, id+" in reception") || !strings.Contains(out, "already made") {
		t.Errorf("create again with the key: exit %d, %q; want the same promise", code, out)
	}
	if code, out, errOut := run("create", "--number", "020 123 4589", "--queue", "reception", "--not-before", "+2h"); code != 0 || !strings.Contains(out, ": made; deadline ") {
		t.Errorf("create with a relative not-before: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, _ := run("list", "--queue", "reception"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "pending") {
		t.Errorf("list: exit %d, %q", code, out)
	}
	tomorrow := clk.Now().Add(24 * time.Hour).Format(time.RFC3339)
	if code, out, errOut := run("reschedule", "--not-before", tomorrow, id); code != 0 || !strings.Contains(out, "rescheduled") {
		t.Errorf("reschedule: exit %d, %q, %q", code, out, errOut)
	}
	code, out, _ = run("show", "--json", id)
	var shown struct {
		State     string
		NotBefore time.Time `json:"not_before"`
	}
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || shown.State != "pending" || shown.NotBefore.Format(time.RFC3339) != tomorrow {
		t.Errorf("show --json: exit %d, %q (%v); want pending from tomorrow", code, out, err)
	}
	if code, out, _ := run("cancel", "--detail", "caller reached by mail", id); code != 0 || !strings.Contains(out, ": cancelled;") || !strings.Contains(out, "caller reached by mail") {
		t.Errorf("cancel: exit %d, %q", code, out)
	}
	for _, bad := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"cancel", id}, 1, "409"},
		{[]string{"create", "--number", "0900 123 4567", "--queue", "reception"}, 1, "number"},
		{[]string{"create", "--number", "not a number"}, 2, "--number"},
		{[]string{"create", "--number", "+31201234588", "--queue", "reception", "--deadline", "+1m"}, 1, "the earliest deadline it can keep"},
		{[]string{"create", "--number", "+31201234588", "--deadline", "tomorrow"}, 2, "--deadline"},
		{[]string{"create"}, 2, "--number is required"},
		{[]string{"show"}, 2, "one promise ID"},
		{[]string{"frobnicate"}, 2, "unknown verb"},
	} {
		if code, _, errOut := run(bad.args...); code != bad.code || !strings.Contains(errOut, bad.says) {
			t.Errorf("promise %v: exit %d, stderr %q; want %d saying %q", bad.args, code, errOut, bad.code, bad.says)
		}
	}
	wrong := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(wrong, []byte("not-the-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run("list", "--token-file", wrong); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("a wrong token: exit %d, %q; want 1 naming the 401", code, errOut)
	}
}
