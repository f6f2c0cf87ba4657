package webhook

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Results counted in callbackd_webhook_deliveries_total.
const (
	ResultDelivered    = "delivered"     // the endpoint accepted it (2xx)
	ResultFailed       = "failed"        // an attempt failed; it will be retried
	ResultDeadLettered = "dead_lettered" // retried for retry_for, or unreadable: given up
	ResultSkipped      = "skipped"       // acknowledged without a request: not subscribed, or gone from the stream
)

// Results lists every result, in the order above.
func Results() []string {
	return []string{ResultDelivered, ResultFailed, ResultDeadLettered, ResultSkipped}
}

type metrics struct {
	deliveries *prometheus.CounterVec
	lagGauge   *prometheus.GaugeVec

	mu  sync.Mutex
	lag map[string]map[string]float64 // endpoint → queue → seconds
}

func newMetrics(reg prometheus.Registerer, endpoints []Endpoint) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callbackd_webhook_deliveries_total",
			Help: "Webhook delivery attempts and their ends, by endpoint and result (delivered, failed: will be retried, dead_lettered, skipped: not sent).",
		}, []string{"endpoint", "result"}),
		lagGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "callbackd_webhook_lag_seconds",
			Help: "Age of the oldest event not yet delivered to the endpoint (0 when it has them all), as last seen by this daemon.",
		}, []string{"endpoint"}),
		lag: map[string]map[string]float64{},
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.lagGauge} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, e := range endpoints {
		for _, r := range Results() {
			m.deliveries.WithLabelValues(e.Name, r)
		}
		m.lagGauge.WithLabelValues(e.Name)
		m.lag[e.Name] = map[string]float64{}
	}
	return m, nil
}

func (m *metrics) count(endpoint, result string) {
	m.deliveries.WithLabelValues(endpoint, result).Inc()
}

// setLag records one queue's lag; the endpoint's is the worst of its queues.
func (m *metrics) setLag(endpoint, queue string, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lag[endpoint][queue] = seconds
	worst := 0.0
	for _, s := range m.lag[endpoint] {
		worst = max(worst, s)
	}
	m.lagGauge.WithLabelValues(endpoint).Set(worst)
}
