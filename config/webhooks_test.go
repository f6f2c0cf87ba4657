package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func parseWithWebhooks(t *testing.T, webhooks string) (*Config, error) {
	t.Helper()
	base, err := os.ReadFile("testdata/minimal.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	return Parse([]byte(string(base)+"webhooks:\n"+webhooks), nil)
}

func TestAWebhookGetsItsDefaults(t *testing.T) {
	c, err := parseWithWebhooks(t, "  - name: crm\n    url: https://crm.example/hooks/callbackd\n    secret: "+testWebhookSecret+"\n")
	if err != nil {
		t.Fatal(err)
	}
	w := c.Webhooks[0]
	if w.RetryFor.D() != 24*time.Hour || w.Timeout.D() != 10*time.Second || len(w.Events) != 0 || w.MaskNumbers {
		t.Fatalf("defaults: %+v", w)
	}
	if out, _ := Marshal(c); strings.Contains(string(out), testWebhookSecret) {
		t.Fatalf("the effective config prints the webhook secret:\n%s", out)
	}
}

func TestWebhookProblemsAreNamed(t *testing.T) {
	ok := "    url: https://crm.example/hook\n    secret: " + testWebhookSecret + "\n"
	tests := []struct {
		name, webhooks, want string
	}{
		{"no name", "  - url: https://crm.example/hook\n    secret: " + testWebhookSecret + "\n", "webhooks[0].name: required"},
		{"two of one name", "  - name: crm\n" + ok + "  - name: crm\n" + ok, `webhooks[1].name: duplicate webhook name "crm" (also webhooks[0])`},
		{"not http", "  - name: crm\n    url: ftp://crm.example/hook\n    secret: " + testWebhookSecret + "\n", `webhooks[0].url: scheme must be http:// or https://, got "ftp"`},
		{"no url", "  - name: crm\n    secret: " + testWebhookSecret + "\n", "webhooks[0].url: required"},
		{"an unknown event", "  - name: crm\n" + ok + "    events: [kept, promise_kept]\n", `webhooks[0].events[1]: unknown event type "promise_kept"`},
		{"no secret", "  - name: crm\n    url: https://crm.example/hook\n", "webhooks[0].secret: required"},
		{"a plain password as secret", "  - name: crm\n    url: https://crm.example/hook\n    secret: correct-horse-battery-staple\n", `webhooks[0].secret: invalid webhook secret: must start with "whsec_": want whsec_ followed by the standard base64 of 24 to 64 random bytes`},
		{"a short secret", "  - name: crm\n    url: https://crm.example/hook\n    secret: whsec_c2hvcnQ=\n", "decodes to 5 bytes: want whsec_ followed by the standard base64 of 24 to 64"},
		{"no retrying", "  - name: crm\n" + ok + "    retry_for: 0s\n", "webhooks[0].retry_for: must be > 0"},
		{"a timeout past the retries", "  - name: crm\n" + ok + "    retry_for: 5s\n    timeout: 10s\n", "webhooks[0].timeout: must not be longer than retry_for (5s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseWithWebhooks(t, tt.webhooks)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v; want one containing %q", err, tt.want)
			}
			for _, secret := range []string{"correct-horse-battery-staple", "c2hvcnQ="} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error prints the secret: %v", err)
				}
			}
		})
	}
}
