package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/internal/webhooksig"
	"github.com/callbackd/callbackd/queue"
)

// The demo's CRM: a loopback endpoint that receives the daemon's signed webhooks for every
// finished promise, checks each signature as a real receiver must, and prints what it got, so
// the first command shows the webhooks too.

// demoWebhook is the webhook the demo configures: the outcomes a CRM would act on.
const demoWebhook = "crm"

func demoWebhookEvents() []string {
	return []string{string(queue.EventKept), string(queue.EventLate), string(queue.EventUnreachable)}
}

// crm is the receiving end.
type crm struct {
	srv *http.Server
	ln  net.Listener
	key []byte
	clk clock.Clock
	tl  *timeline

	mu       sync.Mutex
	received map[string]bool // promise ids whose outcome arrived
}

// startCRM listens on a loopback port and adds the webhook pointing at it to cfg, with a
// secret made up for the run.
func startCRM(cfg *config.Config, clk clock.Clock, tl *timeline) (*crm, error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("making the demo webhook's secret: %w", err)
	}
	secret := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	key, err := webhooksig.ParseSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("the demo webhook's secret: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the demo's webhooks: %w", err)
	}
	c := &crm{ln: ln, key: key, clk: clk, tl: tl, received: map[string]bool{}}
	c.srv = &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	go func() { _ = c.srv.Serve(ln) }()
	w := config.DefaultWebhook()
	w.Name, w.URL, w.Secret, w.Events = demoWebhook, config.SecretURL(c.url()), config.Secret(secret), demoWebhookEvents()
	cfg.Webhooks = append(cfg.Webhooks, w)
	return c, nil
}

func (c *crm) url() string { return "http://" + c.ln.Addr().String() + "/callbackd" }

// ServeHTTP answers 204 to a delivery whose signature holds, 400 otherwise (the daemon then
// retries it, and dead-letters it in the end).
func (c *crm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		// The daemon signs with the demo's simulated clock; the receiver judges with it too.
		err = webhooksig.Verify(c.key, r.Header.Get(webhooksig.HeaderID), r.Header.Get(webhooksig.HeaderTimestamp),
			body, r.Header.Get(webhooksig.HeaderSignature), c.clk.Now(), 5*time.Minute)
	}
	var e queue.Event
	if err == nil {
		err = json.Unmarshal(body, &e)
	}
	if err != nil {
		c.tl.printf("webhook %s: delivery refused: %v", demoWebhook, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The line is printed before the delivery counts as received: the demo prints its summary
	// once every outcome was received, and this line belongs before it.
	c.mu.Lock()
	if !c.received[e.Promise] { // a delivery retried after a lost answer is acknowledged, not printed twice
		c.tl.printf("webhook %s: %s for promise %s (%s), signature verified", demoWebhook, e.Type, short(e.Promise), phone.Mask(e.Number))
		c.received[e.Promise] = true
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// waitFor waits until the outcomes of every promise in ids have arrived, or the guard passes
// (it says which did not).
func (c *crm) waitFor(ctx context.Context, ids []string, guard time.Duration) error {
	stop := time.After(guard)
	for {
		c.mu.Lock()
		missing := 0
		for _, id := range ids {
			if !c.received[id] {
				missing++
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return fmt.Errorf("the demo CRM did not receive the webhooks of %d finished promise(s) within %s", missing, guard)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *crm) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = c.srv.Close()
	}
}
