package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/stasisapp"
)

// An administrator records their PBX and replays the recording: a voicemail left on the
// (fake) PBX while recording must come out of replay as a voicemail request.
func TestRecordThenReplayShowsWhatTheDetectorWouldDo(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)

	a := config.DefaultAsterisk()
	a.Name, a.URL, a.Username, a.Password = "pbx", config.SecretURL(pbx.URL()+"/ari"), "callbackd", "callbackd-secret"
	trace := &daemontest.Output{}
	var stderr daemontest.Output
	ctx, cancel := context.WithCancel(context.Background())
	recorded := make(chan error, 1)
	go func() { recorded <- record(ctx, a, defaultRecordApp, clk, trace, &stderr) }()
	daemontest.WaitUntil(t, "the recorder to connect", func() bool { return pbx.Connected(defaultRecordApp) })

	call := pbx.Inbound(aritest.InboundCall{From: "+31201234502", To: "+31205550103", Steps: []aritest.Step{
		aritest.Dial("PJSIP/1003", 10*time.Second, ""),
		aritest.VoiceMail("1003@default", 3*time.Second),
	}})
	if err := call.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "trace.jsonl")
	want := `{"number":"+31201234502","reason":"voicemail","target":"1003"`
	var out bytes.Buffer
	daemontest.WaitUntil(t, "the recording to hold the whole call", func() bool {
		if err := os.WriteFile(file, []byte(trace.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		return runReplay(context.Background(), []string{"--trace", file}, &out, &bytes.Buffer{}) == 0 &&
			strings.HasPrefix(out.String(), want)
	})
	cancel()
	if err := <-recorded; err != nil {
		t.Fatalf("record: %v", err)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("replay of the recording printed %d lines; want the one voicemail request:\n%s", n, out.String())
	}
	if !strings.Contains(trace.String(), `"kind":"ws","app":"callbackd-record","state":"connected"`) {
		t.Errorf("the recording does not say when the socket connected")
	}
}

func TestRecordRefusesToTakeOverTheDaemonsApps(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(file, []byte(demo.ConfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-c", file, "--app", "callbackd-monitor"}, 2, "daemon's own application"},
		{[]string{"-c", file, "--app", "callbackd"}, 2, "daemon's own application"},
		{[]string{"-c", file, "--asterisk", "nope"}, 1, `no asterisk entry is named "nope"`},
		{[]string{}, 2, "-c FILE is required"},
		{[]string{"-c", filepath.Join(dir, "missing.yml")}, 1, "missing.yml"},
	}
	// The daemon on this host registers the configured names with its instance id appended.
	if host, err := os.Hostname(); err == nil && stasisapp.FromHost(host) != "" {
		cases = append(cases, struct {
			args []string
			code int
			msg  string
		}{[]string{"-c", file, "--app", "callbackd-" + stasisapp.FromHost(host)}, 2, "daemon's own application"})
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		code := runRecord(context.Background(), tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.msg) || out.Len() != 0 {
			t.Errorf("record %v: exit %d, stderr %q; want exit %d mentioning %q and nothing on stdout", tc.args, code, errOut.String(), tc.code, tc.msg)
		}
	}
}
