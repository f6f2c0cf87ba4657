package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon/daemontest"
	"github.com/callbackd/callbackd/internal/webhooksig"
	"github.com/callbackd/callbackd/queue"
)

// The operations surface end to end, as a CRM uses it (issue 14's "done when"): a web form's
// request sent twice with one idempotency key makes one promise; the CRM watches it kept over
// /events and hears it in a signed webhook delivery; then the customer asks to be forgotten,
// and nothing about them is left.
func TestE2EAPromiseMadeTwiceIsOneKeptOnceThenErased(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	const customer = "+31201234577"
	key, err := webhooksig.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var delivered []queue.Event
	var r *rig
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := webhooksig.Verify(key, req.Header.Get(webhooksig.HeaderID), req.Header.Get(webhooksig.HeaderTimestamp),
			body, req.Header.Get(webhooksig.HeaderSignature), r.clk.Now(), 5*time.Minute); err != nil {
			t.Errorf("a webhook delivery does not verify: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e queue.Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
		}
		mu.Lock()
		delivered = append(delivered, e)
		mu.Unlock()
	}))
	t.Cleanup(crm.Close)
	r = newRig(t, func(c *config.Config) {
		c.Webhooks = []config.Webhook{{Name: "crm", URL: config.SecretURL(crm.URL), Secret: config.Secret(secret),
			Events: []string{"made", "kept"}, RetryFor: config.Duration(time.Hour), Timeout: config.Duration(5 * time.Second)}}
	})
	r.pbx.SetEndpoint("PJSIP/"+customer+"@provider", aritest.Behavior{Answer: true, AnswerAfter: time.Second, HangupAfter: 2 * time.Second})
	s := r.openStream(nil, "", admin, "")

	form := map[string]any{"number": customer, "queue": "reception", "name": "J. Jansen", "external_ref": "CRM-4711"}
	once := http.Header{"Idempotency-Key": {"form-4711"}}
	first := r.call("POST", "/promises", writer, form, once)
	again := r.call("POST", "/promises", writer, form, once)
	var m1, m2 made
	first.decode(t, &m1)
	again.decode(t, &m2)
	if first.Code != 201 || again.Code != 200 || !m2.Replayed || m1.Promise.ID != m2.Promise.ID {
		t.Fatalf("the form sent twice: %d %s then %d %s; want 201 then 200 replaying the same promise", first.Code, first.Body, again.Code, again.Body)
	}
	id := m1.Promise.ID

	kept := s.next(func(m sseMessage) bool { return m.Data.Promise == id && m.Event == "kept" })
	if kept.Data.Number != customer {
		t.Errorf("kept over /events: %+v, want the number in full for a pii token", kept)
	}
	daemontest.WaitUntil(t, "the CRM's webhook to hear the promise kept", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range delivered {
			if e.Promise == id && e.Type == queue.EventKept {
				return true
			}
		}
		return false
	})
	mu.Lock()
	var made, keptHooks int
	for _, e := range delivered {
		if e.Promise != id {
			continue
		}
		switch e.Type {
		case queue.EventMade:
			made++
		case queue.EventKept:
			keptHooks++
		}
	}
	mu.Unlock()
	if made != 1 || keptHooks != 1 {
		t.Errorf("webhook deliveries: %d made, %d kept; want one of each (one promise)", made, keptHooks)
	}
	var list struct{ Promises []promise }
	r.call("GET", "/promises?number="+url.QueryEscape(customer), admin, nil, nil).decode(t, &list)
	if len(list.Promises) != 1 || list.Promises[0].State != "kept" {
		t.Errorf("promises of the customer: %+v, want one, kept", list.Promises)
	}

	if a := r.call("DELETE", "/customers/"+url.PathEscape(customer), writer, nil, nil); a.Code != 200 {
		t.Fatalf("erase: %d %s", a.Code, a.Body)
	}
	var export queue.CustomerRecords
	r.call("GET", "/customers/"+url.PathEscape(customer), admin, nil, nil).decode(t, &export)
	for _, q := range export.Queues {
		if len(q.Jobs)+len(q.Outcomes)+len(q.Events) != 0 || q.Dedupe != nil {
			t.Errorf("after the erasure queue %s still holds %+v", q.Queue, q)
		}
	}
	if a := r.call("GET", "/promises/"+id, admin, nil, nil); a.Code != 404 {
		t.Errorf("the erased promise: %d %s, want 404", a.Code, a.Body)
	}
}

// A promise cancelled over the API ends like any other: counted in
// callbackd_promises_completed_total{outcome="cancelled"}, so the dashboards see it.
func TestV1ACancelIsCountedAsACompletedPromise(t *testing.T) {
	r := newRig(t)
	m := r.make(t, map[string]any{"number": "+31201234578", "queue": "reception", "window": r.later()})
	if a := r.call("POST", "/promises/"+m.Promise.ID+"/cancel", writer, map[string]any{"detail": "made by mistake"}, nil); a.Code != 200 {
		t.Fatalf("cancel: %d %s", a.Code, a.Body)
	}
	req, err := http.NewRequest("GET", r.srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+reader)
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := `callbackd_promises_completed_total{outcome="cancelled",queue="reception"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
