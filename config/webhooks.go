package config

import (
	"fmt"
	"net/url"
	"time"

	"github.com/callbackd/callbackd/internal/webhooksig"
	"github.com/callbackd/callbackd/queue"
)

// Webhook is one endpoint that hears of promise events (webhooks[]): every daemon on the
// Redis delivers them, each event once the endpoint accepts it (at least once).
type Webhook struct {
	// Name identifies the endpoint in metrics and in its Redis consumer group; renaming it
	// starts a new group that begins at the events after its first start.
	Name string    `yaml:"name"`
	URL  SecretURL `yaml:"url"`
	// Events are the event types sent; empty sends all.
	Events []string `yaml:"events"`
	// Secret signs every delivery (Standard Webhooks: whsec_<base64>).
	Secret Secret `yaml:"secret"`
	// RetryFor is how long a failing delivery is retried, from its first attempt, before it
	// is dead-lettered.
	RetryFor Duration `yaml:"retry_for"`
	// Timeout bounds one request.
	Timeout Duration `yaml:"timeout"`
	// MaskNumbers masks the customer's number in the body. Off by default: the endpoint is
	// the CRM's, which has the number anyway.
	MaskNumbers bool `yaml:"mask_numbers"`
}

// DefaultWebhook is what every entry of the webhooks list starts from.
func DefaultWebhook() Webhook {
	return Webhook{RetryFor: Duration(24 * time.Hour), Timeout: Duration(10 * time.Second)}
}

func (v *validator) webhooks(list []Webhook) {
	names := map[string]int{}
	for i, w := range list {
		p := fmt.Sprintf("webhooks[%d]", i)
		if v.required(p+".name", w.Name) {
			if !nameRE.MatchString(w.Name) {
				v.addf(p+".name", "must be 1 to 64 letters, digits, '_', '.' or '-'")
			} else if j, dup := names[w.Name]; dup {
				v.addf(p+".name", "duplicate webhook name %q (also webhooks[%d])", w.Name, j)
			} else {
				names[w.Name] = i
			}
		}
		if v.required(p+".url", w.URL.Reveal()) {
			u, err := url.Parse(w.URL.Reveal())
			switch {
			case err != nil:
				v.addf(p+".url", "%s", urlProblem(w.URL, err))
			case u.Scheme != "http" && u.Scheme != "https":
				v.addf(p+".url", "scheme must be http:// or https://, got %q", u.Scheme)
			case u.Host == "":
				v.addf(p+".url", "missing host")
			}
		}
		for j, e := range w.Events {
			if _, err := queue.ParseEventType(e); err != nil {
				v.addf(fmt.Sprintf("%s.events[%d]", p, j), "unknown event type %q (known: %v)", e, queue.EventTypes())
			}
		}
		if v.required(p+".secret", w.Secret.Reveal()) {
			if _, err := webhooksig.ParseSecret(w.Secret.Reveal()); err != nil {
				v.addf(p+".secret", "%v", err)
			}
		}
		v.positive(p+".retry_for", w.RetryFor)
		v.positive(p+".timeout", w.Timeout)
		if w.Timeout > 0 && w.RetryFor > 0 && w.Timeout > w.RetryFor {
			v.addf(p+".timeout", "must not be longer than retry_for (%s)", w.RetryFor)
		}
	}
}
