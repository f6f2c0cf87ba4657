package ari

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the connection manager's Prometheus series. A nil *Metrics records nothing, so
// tests and tools need not build one.
type Metrics struct {
	connected  *prometheus.GaugeVec
	reconnects *prometheus.CounterVec
	events     *prometheus.CounterVec
	unknown    prometheus.Counter
	malformed  prometheus.Counter
	rest       *prometheus.CounterVec
	backlog    *backlogCollector
	overflows  *prometheus.CounterVec
}

// NewMetrics creates the series and registers them on reg. It panics if they are already
// registered there, as prometheus.MustRegister does: that is a wiring bug, found at start-up.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "callbackd_ari_connected",
			Help: "1 while the ARI event sockets of an Asterisk are up and resynced, else 0.",
		}, []string{"asterisk"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callbackd_ari_reconnects_total",
			Help: "ARI connection attempts after the first, per Asterisk.",
		}, []string{"asterisk"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callbackd_ari_events_total",
			Help: "ARI events received, by type.",
		}, []string{"type"}),
		unknown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callbackd_ari_unknown_events_total",
			Help: "ARI events of a type callbackd does not know; skipped.",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callbackd_ari_malformed_events_total",
			Help: "ARI event frames that were not a JSON object with a type; skipped.",
		}),
		rest: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callbackd_ari_rest_requests_total",
			Help: "ARI REST requests by method and HTTP status (\"error\" when no reply came).",
		}, []string{"method", "status"}),
		overflows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callbackd_ari_backlog_overflows_total",
			Help: "Sockets closed because the events read and not yet handled passed their bound; each is followed by a reconnect and a resync.",
		}, []string{"asterisk"}),
		backlog: &backlogCollector{
			desc: prometheus.NewDesc("callbackd_ari_event_backlog",
				"ARI events read from the socket and not yet handled, per Asterisk and app (monitor, control).",
				[]string{"asterisk", "app"}, nil),
			sources: map[[2]string]func() float64{},
		},
	}
	reg.MustRegister(m.connected, m.reconnects, m.events, m.unknown, m.malformed, m.rest, m.backlog, m.overflows)
	// Known types start at 0 so rate() and absent() alerts work before the first event.
	for t := range knownEventTypes {
		m.events.WithLabelValues(string(t))
	}
	return m
}

// register starts an Asterisk's series at zero: not connected, no reconnects.
func (m *Metrics) register(asterisk string) {
	if m == nil {
		return
	}
	m.connected.WithLabelValues(asterisk).Set(0)
	m.reconnects.WithLabelValues(asterisk)
	m.overflows.WithLabelValues(asterisk)
}

func (m *Metrics) backlogOverflow(asterisk string) {
	if m != nil {
		m.overflows.WithLabelValues(asterisk).Inc()
	}
}

func (m *Metrics) setConnected(asterisk string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.connected.WithLabelValues(asterisk).Set(v)
}

func (m *Metrics) reconnect(asterisk string) {
	if m != nil {
		m.reconnects.WithLabelValues(asterisk).Inc()
	}
}

func (m *Metrics) event(typ EventType) {
	if m != nil {
		m.events.WithLabelValues(string(typ)).Inc()
	}
}

func (m *Metrics) unknownEvent() {
	if m != nil {
		m.unknown.Inc()
	}
}

func (m *Metrics) malformedEvent() {
	if m != nil {
		m.malformed.Inc()
	}
}

func (m *Metrics) restRequest(method, status string) {
	if m != nil {
		m.rest.WithLabelValues(method, status).Inc()
	}
}

// watchBacklog makes the backlog series of (asterisk, app) read f at every scrape, so it is
// current even while a Handler is stuck; the returned func removes the series.
func (m *Metrics) watchBacklog(asterisk, app string, f func() float64) (stop func()) {
	if m == nil {
		return func() {}
	}
	key := [2]string{asterisk, app}
	m.backlog.mu.Lock()
	m.backlog.sources[key] = f
	m.backlog.mu.Unlock()
	return func() {
		m.backlog.mu.Lock()
		delete(m.backlog.sources, key)
		m.backlog.mu.Unlock()
	}
}

// backlogCollector reports queue lengths at scrape time.
type backlogCollector struct {
	desc    *prometheus.Desc
	mu      sync.Mutex
	sources map[[2]string]func() float64
}

func (b *backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

func (b *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, f := range b.sources {
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, f(), k[0], k[1])
	}
}
