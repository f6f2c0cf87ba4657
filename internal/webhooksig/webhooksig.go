// Package webhooksig is the Standard Webhooks signature (https://www.standardwebhooks.com):
// the secret's form, the signed content and the header value. The config checks secrets with
// it and the webhook deliverer signs with it, so the rule is written once.
package webhooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of a signed request, as Standard Webhooks names them.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret; MinSecretBytes is the shortest decoded secret accepted.
const (
	SecretPrefix   = "whsec_"
	MinSecretBytes = 24
	// MaxSecretBytes is Standard Webhooks' upper bound; longer keys add nothing to HMAC-SHA256.
	MaxSecretBytes = 64
)

// SecretRule is the rule ParseSecret applies, in words, for error messages and docs.
var SecretRule = fmt.Sprintf("%s followed by the standard base64 of %d to %d random bytes (e.g. echo %s$(openssl rand -base64 32))",
	SecretPrefix, MinSecretBytes, MaxSecretBytes, SecretPrefix)

// ErrSecret marks a secret that breaks SecretRule.
var ErrSecret = errors.New("invalid webhook secret")

// ParseSecret returns the key bytes of a "whsec_<base64>" secret. Its errors never quote the
// secret: they say what is wrong with it.
func ParseSecret(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: must start with %q: want %s", ErrSecret, SecretPrefix, SecretRule)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: the part after %q is not standard base64: want %s", ErrSecret, SecretPrefix, SecretRule)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: decodes to %d bytes: want %s", ErrSecret, len(key), SecretRule)
	}
	return key, nil
}

// Sign returns the webhook-signature header value for a message: "v1," and the base64
// HMAC-SHA256 of "id.timestamp.body" under key, the timestamp in unix seconds.
func Sign(key []byte, id string, at time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, Timestamp(at), body))
}

// Timestamp is the webhook-timestamp header value for at.
func Timestamp(at time.Time) string { return strconv.FormatInt(at.Unix(), 10) }

func mac(key []byte, id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id + "." + ts + "."))
	h.Write(body)
	return h.Sum(nil)
}

// Verify reports whether signatures (a webhook-signature header: space-separated
// "version,signature" pairs) holds a valid v1 signature of id, ts and body under key, and ts
// is within tolerance of now. It is the receiver's side, for tests and Go receivers.
func Verify(key []byte, id, ts string, body []byte, signatures string, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("verifying a webhook: %s %q is not unix seconds", HeaderTimestamp, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("verifying a webhook: %s is %s away from now, more than %s", HeaderTimestamp, d.Round(time.Second), tolerance)
	}
	want := mac(key, id, ts, body)
	for _, s := range strings.Fields(signatures) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("verifying a webhook: no v1 signature in %s matches", HeaderSignature)
}
