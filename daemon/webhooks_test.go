package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/internal/webhooksig"
	"github.com/callbackd/callbackd/queue"
)

// A configured webhook hears of the promises the daemon makes, signed with its secret.
func TestTheDaemonDeliversPromiseEventsToAConfiguredWebhook(t *testing.T) {
	pbx, clk := daemontest.StartPBX(t)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, err := webhooksig.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []queue.Event
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := webhooksig.Verify(key, r.Header.Get(webhooksig.HeaderID), r.Header.Get(webhooksig.HeaderTimestamp), body,
			r.Header.Get(webhooksig.HeaderSignature), clk.Now(), 5*time.Minute)
		if err != nil {
			t.Errorf("a delivery does not verify: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e queue.Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}))
	t.Cleanup(crm.Close)

	cfg, err := config.Parse([]byte(demo.ConfigYAML+"\nwebhooks:\n  - name: crm\n    url: "+crm.URL+"\n    secret: "+secret+"\n    events: [made]\n"),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Asterisk[0].URL = config.SecretURL(pbx.URL() + "/ari")
	rdb := redistest.Start(t, redistest.Options{}).Client()
	d, _, _ := runDaemon(t, cfg, rdb, clk)
	daemontest.WaitUntil(t, "the webhook's consumer group exists", func() bool {
		groups, err := rdb.XInfoGroups(context.Background(), d.Store().EventStreamKey("reception")).Result()
		return err == nil && len(groups) == 1 && groups[0].Name == "webhook:crm"
	})

	j, _, err := d.Store().Enqueue(context.Background(), queue.Request{Queue: "reception", Number: "+31201234501",
		Reason: queue.ReasonVoicemail, Target: "1001", Deadline: clk.Now().Add(time.Hour), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	daemontest.WaitUntil(t, "the CRM hears of the promise", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if e := got[0]; e.Type != queue.EventMade || e.Promise != j.ID || e.Number != "+31201234501" {
		t.Errorf("the CRM got %+v, want the made event of %s with its number", e, j.ID)
	}
}
