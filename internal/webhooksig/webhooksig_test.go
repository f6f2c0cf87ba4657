package webhooksig

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification: a receiver written from the spec
// accepts what Sign makes.
func TestSignMatchesTheStandardWebhooksExample(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"test": 2432232314}`)
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), body)
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	key := make([]byte, 32)
	at := time.Unix(1764633600, 0)
	body := []byte(`{"id":"sales/1-0"}`)
	sig := Sign(key, "sales/1-0", at, body)
	ts := Timestamp(at)
	tests := []struct {
		name       string
		id, ts     string
		body       string
		signatures string
		now        time.Time
		ok         bool
	}{
		{"the signed message", "sales/1-0", ts, string(body), sig, at, true},
		{"one of several signatures", "sales/1-0", ts, string(body), "v1,AAAA " + sig, at.Add(time.Minute), true},
		{"another body", "sales/1-0", ts, `{"id":"sales/2-0"}`, sig, at, false},
		{"another id", "sales/2-0", ts, string(body), sig, at, false},
		{"a replay long after", "sales/1-0", ts, string(body), sig, at.Add(time.Hour), false},
		{"an unknown version", "sales/1-0", ts, string(body), strings.Replace(sig, "v1,", "v2,", 1), at, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(key, tc.id, tc.ts, []byte(tc.body), tc.signatures, tc.now, 5*time.Minute)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestParseSecretNamesTheRule(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	tests := []struct {
		name, secret string
		bytes        int // 0: refused
	}{
		{"24 bytes", SecretPrefix + b64(24), 24},
		{"64 bytes", SecretPrefix + b64(64), 64},
		{"no prefix", b64(32), 0},
		{"too short", SecretPrefix + b64(16), 0},
		{"too long", SecretPrefix + b64(65), 0},
		{"not base64", SecretPrefix + "not*base64*at*all*not*base64*at*all*", 0},
		{"empty", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParseSecret(tc.secret)
			if tc.bytes > 0 {
				if err != nil || len(key) != tc.bytes {
					t.Fatalf("ParseSecret = %d bytes, %v; want %d bytes", len(key), err, tc.bytes)
				}
				return
			}
			if !errors.Is(err, ErrSecret) || !strings.Contains(err.Error(), SecretRule) {
				t.Fatalf("ParseSecret error %v does not state the rule", err)
			}
			if len(tc.secret) > 8 && strings.Contains(err.Error(), tc.secret) {
				t.Fatalf("error quotes the secret: %v", err)
			}
		})
	}
}
