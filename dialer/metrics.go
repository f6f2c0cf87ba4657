package dialer

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/internal/netcause"
	"github.com/callbackd/callbackd/queue"
)

// Metrics is the dialer's Prometheus instrumentation: counters it updates as promises are
// made and settled, and collectors that read the store and the agent pool at scrape time
// (so several daemons sharing one Redis report the same queue depth and kept ratio).
// A nil *Metrics records nothing.
type Metrics struct {
	created     *prometheus.CounterVec
	completedC  *prometheus.CounterVec
	slack       *prometheus.HistogramVec
	toCallback  *prometheus.HistogramVec
	attempts    *prometheus.CounterVec
	storeErrors prometheus.Counter
	riskStart   *prometheus.CounterVec
	refusedC    *prometheus.CounterVec
	gapMade     *prometheus.CounterVec
}

// Outcomes counted in callbackd_promises_completed_total.
var finalStates = []queue.State{queue.StateKept, queue.StateLate, queue.StateUnreachable, queue.StateCancelled,
	queue.StateResolved, queue.StateExpired, queue.StateFailed}

// NewMetrics creates the dialer's metrics for the queues and registers them on reg.
// Every label combination that can occur starts at zero, so rate() and absent() work from the
// first scrape.
func NewMetrics(reg prometheus.Registerer, queues []string) *Metrics {
	m := &Metrics{
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callbackd_promises_created_total",
			Help: "Callback promises made, by queue and reason (requests merged into an open promise are not counted).",
		}, []string{"queue", "reason"}),
		completedC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callbackd_promises_completed_total",
			Help: "Callback promises finished by this daemon, by queue and outcome.",
		}, []string{"queue", "outcome"}),
		slack: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "callbackd_promise_slack_seconds",
			Help:    "Deadline minus the moment the customer was connected; negative means late.",
			Buckets: slackBuckets,
		}, []string{"queue"}),
		toCallback: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "callbackd_time_to_callback_seconds",
			Help:    "From the promise being made to the customer being connected.",
			Buckets: []float64{60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400},
		}, []string{"queue"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callbackd_call_attempts_total",
			Help: "Calls placed by callbackd, by queue, leg (agent or customer) and result.",
		}, []string{"queue", "leg", "result"}),
		refusedC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callbackd_requests_refused_total",
			Help: "Callback requests refused (no promise made) and dials not placed, by reason.",
		}, []string{"reason"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callbackd_store_scrape_errors_total",
			Help: "Scrapes that could not read the promise store (the store-backed series are missing from them).",
		}),
		gapMade: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callbackd_promises_from_events_gaps_total",
			Help: "Voicemail promises made for a caller whose voicemail an ARI events gap interrupted (whether a message was left is not known), by queue.",
		}, []string{"queue"}),
		riskStart: newRiskStartCounter(queues),
	}
	for _, r := range queue.Refusals() {
		m.refusedC.WithLabelValues(string(r))
	}
	for _, q := range queues {
		for _, r := range queue.Reasons() {
			m.created.WithLabelValues(q, string(r))
		}
		for _, s := range finalStates {
			m.completedC.WithLabelValues(q, string(s))
		}
		m.slack.WithLabelValues(q)
		m.toCallback.WithLabelValues(q)
		m.gapMade.WithLabelValues(q)
		for leg, results := range AttemptResults() {
			for _, r := range results {
				m.attempts.WithLabelValues(q, leg, r)
			}
		}
	}
	// storeErrors is exported by the StateCollector, after the reads it counts: registered on
	// its own it could be gathered, concurrently, before the scrape that failed had counted.
	reg.MustRegister(m.created, m.completedC, m.slack, m.toCallback, m.attempts, m.riskStart, m.refusedC, m.gapMade)
	return m
}

func (m *Metrics) made(queueName string, reason queue.Reason) {
	if m != nil {
		m.created.WithLabelValues(queueName, string(reason)).Inc()
	}
}

// madeFromGap counts a promise made for a voicemail an events gap interrupted.
func (m *Metrics) madeFromGap(queueName string) {
	if m != nil {
		m.gapMade.WithLabelValues(queueName).Inc()
	}
}

func (m *Metrics) completed(queueName string, outcome queue.State) {
	if m != nil {
		m.completedC.WithLabelValues(queueName, string(outcome)).Inc()
	}
}

func (m *Metrics) attempt(queueName, leg, result string) {
	if m != nil && result != "" {
		m.attempts.WithLabelValues(queueName, leg, result).Inc()
	}
}

func (m *Metrics) connected(job queue.Job, at time.Time) {
	if m == nil {
		return
	}
	m.slack.WithLabelValues(job.Queue).Observe(job.Deadline.Sub(at).Seconds())
	m.toCallback.WithLabelValues(job.Queue).Observe(at.Sub(job.Created).Seconds())
}

func (m *Metrics) reclaimed(queueName string, res queue.ReclaimResult) {
	if m == nil {
		return
	}
	// Promises this daemon finished on behalf of a worker that died: counted like any other.
	// Their slack is not observed here; the store's kept ratio includes them.
	for outcome, n := range map[queue.State]int{queue.StateUnreachable: res.GaveUp, queue.StateKept: res.Kept, queue.StateLate: res.Late} {
		if n > 0 {
			m.completedC.WithLabelValues(queueName, string(outcome)).Add(float64(n))
		}
	}
}

// StoreReader is what the scrape-time collector reads from the promise store.
type StoreReader interface {
	Stats(ctx context.Context, queueName string) (queue.Stats, error)
	Outcomes(ctx context.Context, queueName string, window time.Duration) (map[queue.State]int64, error)
	Schedule(ctx context.Context, queueName string, limit int) ([]queue.Due, int, error)
}

// scheduleLimit bounds how many pending promises of a queue each scrape forecasts: the most
// urgent ones, which are the ones an alert is about.
const scheduleLimit = 1000

// StateCollector reports what is in the store and the pool at scrape time: open promises by
// state, the kept ratio over the configured window, agents by state.
type StateCollector struct {
	queues  []string
	window  time.Duration
	store   StoreReader
	pool    *Pool
	log     *zap.Logger
	timeout time.Duration
	errors  prometheus.Counter

	forecaster *Forecaster
	fm         forecastMetrics

	open   *prometheus.Desc
	quar   *prometheus.Desc
	ratio  *prometheus.Desc
	agents *prometheus.Desc
}

// RegisterStateCollector registers a StateCollector for the policy's queues on reg. handle is
// the measured length of one callback per queue (Dispatcher.HandleTimeFor), for the forecast.
func (m *Metrics) RegisterStateCollector(reg prometheus.Registerer, p Policy, store StoreReader, pool *Pool,
	handle func(queueName string) time.Duration, log *zap.Logger) {
	if log == nil {
		log = zap.NewNop()
	}
	c := &StateCollector{queues: p.QueueNames(), window: p.KeptRatioWindow, store: store, pool: pool, log: log, timeout: 3 * time.Second, errors: m.storeErrors,
		forecaster: NewForecaster(p, store, pool, handle), fm: newForecastMetrics(),
		quar: prometheus.NewDesc("callbackd_promises_quarantined_total",
			"Promises moved aside because their record in Redis was broken (missing or unreadable fields), by any daemon on this Redis; see <prefix>:{queue}:quarantine.",
			[]string{"queue"}, nil),
		open: prometheus.NewDesc("callbackd_promises_open",
			"Open promises in the store, by queue and state (pending includes those waiting for a retry or calling hours).",
			[]string{"queue", "state"}, nil),
		ratio: prometheus.NewDesc("callbackd_promise_kept_ratio",
			"kept / (kept + late + unreachable + expired) over metrics.kept_ratio_window; NaN while nothing finished.",
			[]string{"queue"}, nil),
		agents: prometheus.NewDesc("callbackd_agents", "Configured agents by state.", []string{"state"}, nil),
	}
	reg.MustRegister(c)
}

// Describe implements prometheus.Collector.
func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	c.errors.Describe(ch)
	ch <- c.quar
	ch <- c.ratio
	ch <- c.agents
	c.fm.describe(ch)
}

// Collect implements prometheus.Collector.
func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	defer c.errors.Collect(ch)
	for _, q := range c.queues {
		if ctx.Err() != nil {
			// The store is down (storeDown cancelled) or slow: the scrape answers now with
			// what it has, instead of every remaining call waiting out the same timeout.
			break
		}
		st, err := c.store.Stats(ctx, q)
		if err != nil {
			c.errors.Inc()
			c.log.Warn("metrics: reading queue stats failed", zap.String("queue", q), zap.Error(err))
			if storeDown(err) {
				cancel()
				continue
			}
		} else {
			for state, n := range map[queue.State]int64{queue.StatePending: st.Ready + st.Delayed, queue.StateDialing: st.Dialing, queue.StateConnected: st.Connected} {
				ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(n), q, string(state))
			}
			ch <- prometheus.MustNewConstMetric(c.quar, prometheus.CounterValue, float64(st.Quarantined), q)
		}
		out, err := c.store.Outcomes(ctx, q, c.window)
		if err != nil {
			c.errors.Inc()
			c.log.Warn("metrics: reading recent outcomes failed", zap.String("queue", q), zap.Error(err))
			if storeDown(err) {
				cancel()
			}
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.ratio, prometheus.GaugeValue, KeptRatio(out), q)
		var now time.Time
		if c.pool != nil {
			now = c.pool.clk.Now()
		}
		if err := c.collectForecast(ctx, ch, q, now); storeDown(err) {
			cancel()
		}
	}
	if c.pool != nil {
		counts := c.pool.Count()
		for _, s := range AgentStates() {
			ch <- prometheus.MustNewConstMetric(c.agents, prometheus.GaugeValue, float64(counts[s]), s)
		}
	}
}

// storeDown tells a store that cannot be reached (refused, timed out, closed) — where every
// further call of the scrape would fail the same way, slowly — from an error of one call.
func storeDown(err error) bool {
	return netcause.Of(err) != netcause.Unknown
}

// KeptRatio is kept ÷ (kept + late + unreachable + expired): of the promises that were due,
// the share kept on time. Cancelled, resolved and failed promises were never the staff's to
// keep. NaN when nothing counted finished.
func KeptRatio(out map[queue.State]int64) float64 {
	kept := out[queue.StateKept]
	den := kept + out[queue.StateLate] + out[queue.StateUnreachable] + out[queue.StateExpired]
	if den == 0 {
		return math.NaN()
	}
	return float64(kept) / float64(den)
}
