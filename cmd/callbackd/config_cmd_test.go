package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exampleConfig = "../../deploy/callbackd.example.yml"

func TestConfigCheck(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte(`asterisk:
  - name: pbx1
    url: ws://pbx1/ari
    username: callbackd
    password: change-me
queues:
  - name: "{support}"
    max_attempts: 0
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        []string
		wantCode   int
		wantStdout []string
		wantStderr string
		notStdout  []string
	}{
		{
			name:       "the example file passes and prints the effective config",
			args:       []string{"check", "-c", exampleConfig},
			wantCode:   0,
			wantStdout: []string{"key_prefix: callbackd\n", "monitor_app: callbackd-monitor\n", "password: <secret>\n", "retention: 720h\n"},
			notStdout:  []string{"change-me"},
		},
		{
			name:       "environment overrides show in the effective config, secrets masked",
			args:       []string{"check", "-c", exampleConfig},
			env:        []string{"CALLBACKD_QUEUES_1_MAX_ATTEMPTS=9", "CALLBACKD_HTTP_TOKEN=abc123xyz-0123456789"},
			wantCode:   0,
			wantStdout: []string{"max_attempts: 9\n", "token: <secret>\n"},
			notStdout:  []string{"abc123xyz"},
		},
		{
			name:     "a bad file lists every problem and exits 1",
			args:     []string{"check", "-c", bad},
			wantCode: 1,
			wantStderr: "config " + bad + ": 3 problems:\n" +
				`  asterisk[0].url: scheme must be http:// or https:// (the ARI base URL, e.g. http://127.0.0.1:8088/ari), got "ws" (line 3)` + "\n" +
				"  queues[0].name: must not contain { or } (they are Redis Cluster hash tags) (line 7)\n" +
				"  queues[0].max_attempts: must be >= 1 (line 8)\n",
		},
		{
			name:     "an unknown CALLBACKD_ variable is a problem",
			args:     []string{"check", "-c", exampleConfig},
			env:      []string{"CALLBACKD_REDIS_PASWORD=x"},
			wantCode: 1,
			wantStderr: "config " + exampleConfig + ": 1 problem:\n" +
				"  CALLBACKD_REDIS_PASWORD: environment variable names no configuration key\n",
		},
		{
			name:       "a missing file exits 1 naming it",
			args:       []string{"check", "-c", "/nonexistent/callbackd.yml"},
			wantCode:   1,
			wantStderr: "config /nonexistent/callbackd.yml: reading config: open /nonexistent/callbackd.yml: no such file or directory\n",
		},
		{
			name:     "--strict refuses the example's placeholders, saying what to change",
			args:     []string{"check", "--strict", "-c", exampleConfig},
			wantCode: 1,
			wantStderr: "config " + exampleConfig + ": 5 values are still the example's (deploy/callbackd.example.yml):\n" +
				`  asterisk[0].password: is the example's "change-me"; set the password of the [callbackd] user in ari.conf (prefer CALLBACKD_ASTERISK_0_PASSWORD)` + "\n" +
				"  dialer.caller_id.number: is the example's +31201234500; set the number customers should see (one of yours that your trunk lets through)\n" +
				`  dialer.caller_id.name: is the example's "Example Support"; set your company's name` + "\n" +
				"  agents[0]: anna on PJSIP/1001 is an example agent; list your agents and their endpoints (or none: promises are still made)\n" +
				"  agents[1]: bram on PJSIP/1002 is an example agent; list your agents and their endpoints (or none: promises are still made)\n",
		},
		{
			name: "--strict passes once they are changed",
			args: []string{"check", "--strict", "-c", exampleConfig},
			env: []string{"CALLBACKD_ASTERISK_0_PASSWORD=from-ari-conf", "CALLBACKD_DIALER_CALLER_ID_NUMBER=+31307654300",
				"CALLBACKD_DIALER_CALLER_ID_NAME=Acme", "CALLBACKD_AGENTS_0_ENDPOINT=PJSIP/201", "CALLBACKD_AGENTS_1_ENDPOINT=PJSIP/202"},
			wantCode:   0,
			wantStdout: []string{"endpoint: PJSIP/201\n"},
		},
		{
			name: "--number explains the allow decision for each number",
			args: []string{"check", "-c", exampleConfig, "--number", "020 123 4567", "--number", "0900123456", "--number", "+3222123456", "--number", "0201234"},
			wantStdout: []string{
				"020 123 4567  +31201234567  NL       fixed_line    allowed   allowed: NL fixed_line\n",
				"0900123456    +31900123456  NL       premium_rate  refused   refused: premium_rate numbers are not in dialer.allow.types [fixed_line mobile]\n",
				"+3222123456   +3222123456   BE       fixed_line    refused   refused: BE numbers are not in dialer.allow.countries [NL]\n",
				"0201234       -             -        -             refused   reading 020**34: invalid phone number",
			},
			notStdout: []string{"key_prefix"},
		},
		{name: "no -c is a usage error", args: []string{"check"}, wantCode: 2, wantStderr: "usage: callbackd config check -c FILE"},
		{name: "no subcommand is a usage error", args: nil, wantCode: 2, wantStderr: "usage: callbackd config check -c FILE"},
		{name: "unknown subcommand is a usage error", args: []string{"lint"}, wantCode: 2, wantStderr: "usage: callbackd config check -c FILE"},
		{name: "stray arguments are a usage error", args: []string{"check", "-c", exampleConfig, "extra"}, wantCode: 2, wantStderr: "usage: callbackd config check -c FILE"},
		{name: "unknown flag is a usage error", args: []string{"check", "-f", exampleConfig}, wantCode: 2, wantStderr: "flag provided but not defined: -f"},
		{name: "help is not an error", args: []string{"--help"}, wantCode: 0, wantStderr: "usage: callbackd config check -c FILE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runConfigWithEnv(tc.args, tc.env, &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", code, tc.wantCode, stderr.String())
			}
			for _, want := range tc.wantStdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, not := range tc.notStdout {
				if strings.Contains(stdout.String(), not) {
					t.Errorf("stdout leaks %q", not)
				}
			}
			if tc.wantCode == 1 && stderr.String() != tc.wantStderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), tc.wantStderr)
			}
			if tc.wantCode != 1 && !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantStderr, stderr.String())
			}
			if tc.wantCode != 0 && stdout.Len() > 0 {
				t.Errorf("failure printed a config to stdout:\n%s", stdout.String())
			}
		})
	}
}

// The real entry point reads the process environment; the example must pass through it too.
func TestRunConfigUsesTheProcessEnvironment(t *testing.T) {
	t.Setenv("CALLBACKD_LOG_LEVEL", "debug")
	var stdout, stderr bytes.Buffer
	if code := runConfig(context.Background(), []string{"check", "-c", exampleConfig}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "level: debug\n") {
		t.Errorf("CALLBACKD_LOG_LEVEL not applied:\n%s", stdout.String())
	}
}
