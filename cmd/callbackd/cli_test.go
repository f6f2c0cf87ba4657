package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
)

// The top-level spellings a newcomer tries first all work.
func TestVersionAndHelpCommand(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		stdout   string // prefix
		inStderr string
	}{
		{[]string{"--version"}, 0, "callbackd dev (go", ""},
		{[]string{"-version"}, 0, "callbackd dev (go", ""},
		{[]string{"version"}, 0, "callbackd dev (go", ""},
		{[]string{"help", "run"}, 0, "", "usage: callbackd run"},
		{[]string{"help", "replay"}, 0, "", "usage: callbackd replay"},
		{[]string{"help", "config"}, 0, "", "usage: callbackd config check"},
		// help shows a command's usage; it never runs the command (the man page is made of it).
		{[]string{"help", "version"}, 0, "", "usage: callbackd version"},
		{[]string{"version", "extra"}, 2, "", "usage: callbackd version"},
		{[]string{"help", "frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"help"}, 0, "", "callbackd help COMMAND"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := dispatch(context.Background(), tt.args, &out, &errOut)
		if code != tt.code || !strings.HasPrefix(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.inStderr) {
			t.Errorf("callbackd %s: exit %d, stdout %q, stderr %q; want exit %d, stdout starting %q, stderr naming %q",
				strings.Join(tt.args, " "), code, out.String(), errOut.String(), tt.code, tt.stdout, tt.inStderr)
		}
	}
}

// Every command that reads a configuration takes it as -c FILE and as --config FILE.
func TestEveryCommandTakesDashCAndDashDashConfig(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yml")
	trace := filepath.Join(tracesDir, "01-dial-noanswer.jsonl")
	for _, cmd := range [][]string{{"config", "check"}, {"promises"}, {"record"}, {"replay", "--trace", trace}, {"run"}} {
		for _, flag := range []string{"-c", "--config", "-config", "--c"} {
			args := append(append([]string{}, cmd...), flag, missing)
			var out, errOut bytes.Buffer
			code := dispatch(context.Background(), args, &out, &errOut)
			if code != 1 || !strings.Contains(errOut.String(), missing) {
				t.Errorf("callbackd %s: exit %d, stderr %q; want exit 1 naming the missing file", strings.Join(args, " "), code, errOut.String())
			}
		}
	}
}

// writeConfig writes yaml to a file of its own.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "callbackd.yml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// promises and replay never contact Asterisk, so a config without the ARI password is enough.
func TestCommandsThatNeverContactAsteriskDoNotNeedItsPassword(t *testing.T) {
	noPassword := strings.Replace(demo.ConfigYAML, "    password: callbackd-secret\n", "", 1)
	if noPassword == demo.ConfigYAML {
		t.Fatal("the demo config no longer has the password line this test removes")
	}
	file := writeConfig(t, noPassword)

	var out, errOut bytes.Buffer
	code := runReplay(context.Background(), []string{"--trace", filepath.Join(tracesDir, "01-dial-noanswer.jsonl"), "-c", file}, &out, &errOut)
	if code != 0 {
		t.Errorf("replay -c (no ARI password): exit %d, stderr %q", code, errOut.String())
	}

	_, environ, clk := promisesFixture(t)
	out.Reset()
	errOut.Reset()
	code = runPromisesWithEnv(context.Background(), []string{"-c", file}, environ, clk, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "+31") {
		t.Errorf("promises -c (no ARI password): exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}

	// The daemon does contact Asterisk: config check still names the missing password.
	out.Reset()
	errOut.Reset()
	if code := runConfigWithEnv([]string{"check", "-c", file}, nil, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "asterisk[0].password: required") {
		t.Errorf("config check (no ARI password): exit %d, stderr %q; want exit 1 naming asterisk[0].password", code, errOut.String())
	}
}

// record against a PBX it cannot use ends at once with exit 1 and the reason, not with an
// empty trace and exit 0.
func TestRecordFailsLoudlyWhenItCannotConnect(t *testing.T) {
	pbx, _ := daemontest.StartPBX(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/ari"
	_ = ln.Close() // nothing listens there any more: connection refused

	tests := []struct {
		name, url, password string
		inStderr            string
	}{
		{"nothing listening", refused, "callbackd-secret", "connection refused"},
		{"wrong password", pbx.URL() + "/ari", "wrong", "auth failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := strings.NewReplacer("http://127.0.0.1:1/ari", tt.url, "password: callbackd-secret", "password: "+tt.password).Replace(demo.ConfigYAML)
			file := writeConfig(t, yaml)
			if _, err := config.LoadEnviron(file, nil); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			code := runRecord(ctx, []string{"-c", file, "--asterisk", "fake-pbx"}, &out, &errOut)
			if ctx.Err() != nil {
				t.Fatalf("record kept retrying instead of failing; stderr %q", errOut.String())
			}
			if code != 1 || !strings.Contains(errOut.String(), tt.inStderr) {
				t.Errorf("record: exit %d, stderr %q; want exit 1 naming %q", code, errOut.String(), tt.inStderr)
			}
		})
	}
}

// The completion script is valid bash and offers every command and their flags.
func TestCompletionScriptIsValidBashListingTheFlags(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to check the script with")
	}
	var out, errOut bytes.Buffer
	if code := dispatch(context.Background(), []string{"completion", "bash"}, &out, &errOut); code != 0 {
		t.Fatalf("completion bash: exit %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{`replay) words="--app -c --config --explain --max-malformed --trace"`, `run) words="--allow-example -c --config --log-format"`, "complete -o default -F _callbackd callbackd"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the script lacks %q:\n%s", want, out.String())
		}
	}
	check := exec.Command(bash, "-n")
	check.Stdin = &out
	if msg, err := check.CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v: %s", err, msg)
	}
}

// config check's flags are completed like every other command's: --strict and --number as
// well as -c/--config, read from its own -h.
func TestCompletionOffersEveryFlagOfConfigCheck(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := dispatch(context.Background(), []string{"completion", "bash"}, &out, &errOut); code != 0 {
		t.Fatalf("completion bash: exit %d, stderr %q", code, errOut.String())
	}
	words := map[string]bool{}
	for _, l := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), `config) words="`); ok {
			list, _, _ := strings.Cut(rest, `"`)
			for _, w := range strings.Fields(list) {
				words[w] = true
			}
		}
	}
	for _, want := range []string{"check", "-c", "--config", "--strict", "--number"} {
		if !words[want] {
			t.Errorf("completion for config lacks %s; it offers %v", want, words)
		}
	}
}
