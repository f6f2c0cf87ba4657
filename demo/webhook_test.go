package demo

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/webhooksig"
)

// The demo's CRM, on its loopback listener, checks every delivery as a real receiver must: a body signed with its secret
// and a fresh timestamp is taken (204) and printed once; a wrong signature, a stale timestamp
// or a body that is not an event is refused (400), says why, and counts as nothing received.
func TestTheDemoCRMTakesOnlyWhatItsSecretSigned(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	clk := clock.NewFake(at)
	var out bytes.Buffer
	cfg := &config.Config{}
	c, err := startCRM(cfg, clk, &timeline{w: &out, clk: clk, start: at})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	if len(cfg.Webhooks) != 1 || cfg.Webhooks[0].URL.Reveal() != c.url() {
		t.Fatalf("webhooks configured %+v; want the CRM's", cfg.Webhooks)
	}
	event := []byte(`{"id":"support/1-0","type":"kept","queue":"support","promise":"01M83T4VMYW2THQ2AJPN3ZN32E","number":"+31201234501","at":"2026-12-02T10:00:00Z"}`)
	signed := func(key []byte, at time.Time, body []byte) *http.Request {
		r, err := http.NewRequest("POST", c.url(), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set(webhooksig.HeaderID, "msg-1")
		r.Header.Set(webhooksig.HeaderTimestamp, webhooksig.Timestamp(at))
		r.Header.Set(webhooksig.HeaderSignature, webhooksig.Sign(key, "msg-1", at, body))
		return r
	}
	other := bytes.Repeat([]byte{7}, 24)
	for _, tc := range []struct {
		name string
		req  *http.Request
		code int
	}{
		{"signed with another secret", signed(other, at, event), 400},
		{"signed an hour ago", signed(c.key, at.Add(-time.Hour), event), 400},
		{"not an event", signed(c.key, at, []byte(`not json`)), 400},
		{"signed with its secret, now", signed(c.key, at, event), 204},
	} {
		resp, err := http.DefaultClient.Do(tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: HTTP %d; want %d", tc.name, resp.StatusCode, tc.code)
		}
	}
	if got := strings.Count(out.String(), "delivery refused"); got != 3 {
		t.Errorf("%d refusals printed; want 3\n%s", got, out.String())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.received["01M83T4VMYW2THQ2AJPN3ZN32E"] || len(c.received) != 1 {
		t.Errorf("received %v; want only the well-signed delivery", c.received)
	}
	if !strings.Contains(out.String(), "webhook crm: kept for promise …3ZN32E (+31*******01), signature verified") {
		t.Errorf("the delivery taken is not printed as such:\n%s", out.String())
	}
}
