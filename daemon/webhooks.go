package daemon

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/webhooksig"
	"github.com/callbackd/callbackd/queue"
	"github.com/callbackd/callbackd/webhook"
)

// newWebhooks builds the deliverer of cfg's webhooks (one with nothing to do when there are
// none), this daemon being one consumer of every endpoint's group.
func newWebhooks(cfg *config.Config, rdb redis.UniversalClient, store *queue.Store, instance string,
	clk clock.Clock, log *zap.Logger, reg prometheus.Registerer) (*webhook.Deliverer, error) {
	var endpoints []webhook.Endpoint
	for _, w := range cfg.Webhooks {
		key, err := webhooksig.ParseSecret(w.Secret.Reveal())
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", w.Name, err)
		}
		ep := webhook.Endpoint{Name: w.Name, URL: w.URL.Reveal(), Key: key, RetryFor: w.RetryFor.D(),
			Timeout: w.Timeout.D(), MaskNumbers: w.MaskNumbers}
		for _, e := range w.Events {
			t, err := queue.ParseEventType(e)
			if err != nil {
				return nil, fmt.Errorf("webhook %s: %w", w.Name, err)
			}
			ep.Events = append(ep.Events, t)
		}
		endpoints = append(endpoints, ep)
	}
	return webhook.New(webhook.Options{Redis: rdb, Streams: store, Endpoints: endpoints, Instance: instance,
		Clock: clk, Logger: log, Registerer: reg})
}
