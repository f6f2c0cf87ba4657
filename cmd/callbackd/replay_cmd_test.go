package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	tracesDir = "../../ari/testdata/traces"
	// scenariosDir holds the synthetic scenarios of the detector tests, in the same format.
	scenariosDir = "../../ari/testdata/scenarios"
)

// replay runs the subcommand and returns its exit code, stdout and stderr.
func replay(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runReplay(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

type outLine struct {
	Resolved *bool  `json:"resolved"`
	Number   string `json:"number"`
	Reason   string `json:"reason"`
	Target   string `json:"target"`
	LinkedID string `json:"linkedid"`
	At       string `json:"at"`
}

// parseOutput checks that stdout is nothing but well-formed request lines and summarises them.
func parseOutput(t *testing.T, stdout string) []string {
	t.Helper()
	got := []string{}
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		var l outLine
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("stdout line %q is not a request or resolved line: %v", line, err)
		}
		if l.Resolved != nil {
			t.Errorf("resolved line in a recording of one call: %s", line)
			continue
		}
		if l.Number == "" || l.Reason == "" || l.Target == "" || l.LinkedID == "" {
			t.Errorf("request line with an empty field: %s", line)
		}
		if at, err := time.Parse(time.RFC3339Nano, l.At); err != nil || at.Location() != time.UTC {
			t.Errorf("request line %s: at is not RFC 3339 UTC (%v)", line, err)
		}
		got = append(got, fmt.Sprintf("%s %s %s", l.Number, l.Reason, l.Target))
	}
	sort.Strings(got)
	return got
}

func TestReplayYieldsTheExpectedOutcomeOfEveryRecording(t *testing.T) {
	for _, dir := range []string{tracesDir, scenariosDir} {
		data, err := os.ReadFile(filepath.Join(dir, "expected.json"))
		if err != nil {
			t.Fatalf("reading expected outcomes: %v", err)
		}
		var exp map[string][]struct{ Number, Reason, Target string }
		if err := json.Unmarshal(data, &exp); err != nil {
			t.Fatalf("parsing %s/expected.json: %v", dir, err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
		if len(files) != len(exp) {
			t.Errorf("%s: %d recordings but %d expected outcomes", dir, len(files), len(exp))
		}
		for _, f := range files {
			name := filepath.Base(f)
			t.Run(name, func(t *testing.T) {
				code, stdout, stderr := replay(t, "--trace", f)
				if code != 0 {
					t.Fatalf("exit %d, stderr:\n%s", code, stderr)
				}
				want := []string{}
				for _, r := range exp[name] {
					want = append(want, fmt.Sprintf("%s %s %s", r.Number, r.Reason, r.Target))
				}
				sort.Strings(want)
				if got := parseOutput(t, stdout); !slices.Equal(got, want) {
					t.Errorf("requests:\n got %v\nwant %v", got, want)
				}
			})
		}
	}
}

func TestReplayBadInvocations(t *testing.T) {
	trace := filepath.Join(tracesDir, "01-dial-noanswer.jsonl")
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"unknown flag", []string{"--trace", trace, "--frobnicate"}, 2, "frobnicate"},
		{"no trace", nil, 2, "--trace is required"},
		{"stray argument", []string{"--trace", trace, "extra"}, 2, `unexpected argument "extra"`},
		{"missing trace file", []string{"--trace", "/nonexistent/trace.jsonl"}, 1, "/nonexistent/trace.jsonl"},
		{"missing config file", []string{"--trace", trace, "--config", "/nonexistent/callbackd.yaml"}, 1, "/nonexistent/callbackd.yaml"},
		{"explain without config", []string{"--trace", trace, "--explain"}, 2, "--explain needs --config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := replay(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout must stay empty, got %q", stdout)
			}
			if !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("stderr %q does not mention %q", stderr, tt.inStderr)
			}
		})
	}
}

func TestReplayReportsMalformedLinesAndGoesOn(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(tracesDir, "05-blind-transfer-unavailable.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	lines = slices.Insert(lines, 4, "{broken", `{"kind":"event","app":"cbmon","event":{"type":42}}`, `{"kind":"telepathy"}`)
	path := filepath.Join(t.TempDir(), "damaged.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := replay(t, "--trace", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"line 5:", "line 6:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not report %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "line 7:") {
		t.Errorf("a line of an unknown kind is skipped, not malformed:\n%s", stderr)
	}
	if got := parseOutput(t, stdout); !slices.Equal(got, []string{"+31201234505 unanswered_transfer 1004"}) {
		t.Errorf("requests %v", got)
	}
}

func TestReplayChoosesTheMonitorApp(t *testing.T) {
	// No ws lines: the app that is not a control app is the monitor, and the control app's
	// own copy of the events must not count twice.
	ev := func(app, js string) string {
		return fmt.Sprintf(`{"kind":"event","app":%q,"event":%s}`, app, js)
	}
	ch := `{"id":"c1","name":"PJSIP/trunk-1","caller":{"number":"+31201234501"},"dialplan":{"context":"from-trunk","exten":"s"},"channelvars":{"CHANNEL(linkedid)":"c1"}}`
	trace := strings.Join([]string{
		ev("callbackd", `{"type":"ChannelCreated","timestamp":"2026-11-22T12:00:00.000+0000","channel":`+ch+`}`),
		ev("pbxwatch", `{"type":"ChannelCreated","timestamp":"2026-11-22T12:00:00.000+0000","channel":`+ch+`}`),
		ev("pbxwatch", `{"type":"ChannelDialplan","timestamp":"2026-11-22T12:00:01.000+0000","dialplan_app":"Dial","dialplan_app_data":"PJSIP/1004,10","channel":`+ch+`}`),
		ev("pbxwatch", `{"type":"ChannelDestroyed","timestamp":"2026-11-22T12:00:02.000+0000","channel":`+ch+`}`),
	}, "\n")
	path := filepath.Join(t.TempDir(), "t.jsonl")
	if err := os.WriteFile(path, []byte(trace), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := replay(t, "--trace", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := parseOutput(t, stdout); !slices.Equal(got, []string{"+31201234501 unanswered_transfer 1004"}) {
		t.Errorf("requests %v (stderr %s)", got, stderr)
	}
	if !strings.Contains(stdout, `"at":"2026-11-22T12:00:02Z"`) {
		t.Errorf("request should carry the time the call ended: %s", stdout)
	}
	code, stdout, _ = replay(t, "--trace", path, "--app", "callbackd")
	if code != 0 || stdout != "" {
		t.Errorf("--app callbackd: exit %d, stdout %q; want 0 and nothing", code, stdout)
	}
}

func TestReplayUsesTheConfigsDetectorSettings(t *testing.T) {
	base := `asterisk:
  - name: pbx1
    url: http://127.0.0.1:8088/ari
    username: callbackd
    password: change-me
queues:
  - name: support
`
	write := func(t *testing.T, yaml string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "callbackd.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	trace := filepath.Join(tracesDir, "01-dial-noanswer.jsonl")

	code, stdout, stderr := replay(t, "--trace", trace, "--config", write(t, base))
	if code != 0 || len(parseOutput(t, stdout)) != 1 {
		t.Errorf("default detector settings: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// With extensions numbered 2xxx, 1003 is not internal: nobody internal was tried.
	code, stdout, stderr = replay(t, "--trace", trace, "--config",
		write(t, base+"detector:\n  internal_extension: '^2[0-9]{3}$'\n"))
	if code != 0 || stdout != "" {
		t.Errorf("internal_extension 2xxx: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	code, stdout, stderr = replay(t, "--trace", trace, "--config",
		write(t, base+"detector:\n  internal_extension: '(['\n"))
	if code != 1 || stdout != "" || !strings.Contains(stderr, "internal_extension") {
		t.Errorf("bad regexp: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// A file that is mostly not a recording fails; a recording with a few damaged lines does not
// (TestReplayReportsMalformedLinesAndGoesOn).
func TestReplayFailsOnAFileThatIsNotATrace(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(tracesDir, "01-dial-noanswer.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	goodLines := strings.Split(strings.TrimSpace(string(good)), "\n")
	tests := []struct {
		name     string
		content  string
		args     []string
		code     int
		inStderr string
	}{
		{"garbage", "this is not\x00a trace\n{{{\nPK\x03\x04\n", nil, 1, "3 of 3 lines are malformed"},
		{"a third broken", strings.Join(goodLines, "\n") + strings.Repeat("\n{broken", len(goodLines)/2+1), nil, 1, "malformed (more than --max-malformed 10%)"},
		{"a third broken, threshold raised", strings.Join(goodLines, "\n") + strings.Repeat("\n{broken", len(goodLines)/2+1), []string{"--max-malformed", "50"}, 0, ""},
		{"one broken line, no tolerance", strings.Join(goodLines, "\n") + "\n{broken", []string{"--max-malformed", "0"}, 1, "1 of"},
		{"threshold out of range", strings.Join(goodLines, "\n"), []string{"--max-malformed", "101"}, 2, "want a percentage from 0 to 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.jsonl")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := replay(t, append([]string{"--trace", path}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d naming %q", code, stderr, tt.code, tt.inStderr)
			}
		})
	}
}

// TestReplayExplainsTheQueueOfEachRequest: --explain adds what the customer asked for and the
// queue the promise would go to, naming the rule that chose it.
func TestReplayExplainsTheQueueOfEachRequest(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "callbackd.yaml")
	if err := os.WriteFile(cfg, []byte(`asterisk:
  - {name: pbx1, url: "http://127.0.0.1:8088/ari", username: callbackd, password: change-me}
queues:
  - name: support
  - name: reception
detector:
  default_queue: reception
  routes:
    - {did: "+31205550206", queue: support}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		trace string
		want  string
	}{
		// The operator line of recording 14 is routed by its DID.
		{"14-attended-transfer-blonde-noanswer.jsonl",
			`{"number":"+31201234506","reason":"unanswered_transfer","target":"1003","linkedid":"1796160123.62","at":"2026-12-01T21:22:45.308Z","dial_string":"PJSIP/1003","did":"+31205550206","context":"from-trunk","queue":"support","rule":"detector.routes[0] (did +31205550206)"}`},
		// Recording 01's direct line matches no route and 1003 is nobody's extension here.
		{"01-dial-noanswer.jsonl",
			`{"number":"+31201234501","reason":"unanswered_transfer","target":"1003","linkedid":"1795351945.109","at":"2026-11-22T12:52:38.947Z","dial_string":"PJSIP/1003","did":"+31205550101","context":"from-trunk","queue":"reception","rule":"detector.default_queue"}`},
	}
	for _, tt := range tests {
		code, stdout, stderr := replay(t, "--trace", filepath.Join(tracesDir, tt.trace), "--config", cfg, "--explain")
		if code != 0 || strings.TrimSpace(stdout) != tt.want {
			t.Errorf("%s: exit %d\n got %s\nwant %s\nstderr %s", tt.trace, code, stdout, tt.want, stderr)
		}
	}
}
