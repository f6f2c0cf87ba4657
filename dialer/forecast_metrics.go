package dialer

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// slackBuckets are those of callbackd_promise_slack_seconds, so the predicted and the measured
// slack can be compared bucket by bucket.
var slackBuckets = []float64{-14400, -3600, -900, -300, -60, 0, 60, 300, 900, 1800, 3600, 7200, 14400, 28800}

// forecastMetrics are the scrape-time series the forecast gives.
type forecastMetrics struct {
	risk, slack, quote *prometheus.Desc
}

func newForecastMetrics() forecastMetrics {
	return forecastMetrics{
		risk: prometheus.NewDesc("callbackd_promises_at_risk",
			"Pending promises the forecast (earliest deadline first over the rota, calling hours and measured handle time) reaches only after their deadline (among the 1000 most urgent due and 1000 on hold).",
			[]string{"queue"}, nil),
		slack: prometheus.NewDesc("callbackd_promise_predicted_slack_seconds",
			"Deadline minus the forecast's predicted connect of each pending promise; negative means predicted late (promises with no predicted connect are in no bucket but are at risk).",
			[]string{"queue"}, nil),
		quote: prometheus.NewDesc("callbackd_quote_seconds",
			"How far ahead of now the earliest deadline the forecast keeps for a new promise lies (never less than the queue's policy); absent when none can be kept.",
			[]string{"queue", "reason"}, nil),
	}
}

func (f forecastMetrics) describe(ch chan<- *prometheus.Desc) {
	ch <- f.risk
	ch <- f.slack
	ch <- f.quote
}

// collectForecast reports the at-risk count, the predicted slack and the quotes of a queue.
func (c *StateCollector) collectForecast(ctx context.Context, ch chan<- prometheus.Metric, q string, now time.Time) error {
	in, err := c.forecaster.Input(ctx, q, now)
	if err != nil {
		c.errors.Inc()
		c.log.Warn("metrics: reading the schedule failed", zap.String("queue", q), zap.Error(err))
		return err
	}
	preds := Forecast(in)
	ch <- prometheus.MustNewConstMetric(c.fm.risk, prometheus.GaugeValue, float64(CountAtRisk(preds)), q)
	counts := make(map[float64]uint64, len(slackBuckets))
	var n uint64
	var sum float64
	for _, p := range preds {
		s, ok := p.Slack()
		if !ok {
			continue
		}
		n++
		sum += s.Seconds()
		for _, b := range slackBuckets {
			if s.Seconds() <= b {
				counts[b]++
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.fm.slack, n, sum, counts, q)
	policy, _ := c.forecaster.policy.Queue(q)
	for _, r := range queue.Reasons() {
		floor, err := policy.DeadlineFrom(now, r)
		if err != nil {
			continue
		}
		if t, ok := QuoteFrom(in, floor); ok {
			ch <- prometheus.MustNewConstMetric(c.fm.quote, prometheus.GaugeValue, t.Sub(now).Seconds(), q, string(r))
		}
	}
	return nil
}

func (m *Metrics) atRiskFromStart(queueName string, reason queue.Reason) {
	if m != nil {
		m.riskStart.WithLabelValues(queueName, string(reason)).Inc()
	}
}

func newRiskStartCounter(queues []string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callbackd_promises_at_risk_from_start_total",
		Help: "Promises made although the forecast said, when they were made, that the policy's deadline would be missed.",
	}, []string{"queue", "reason"})
	for _, q := range queues {
		for _, r := range queue.Reasons() {
			c.WithLabelValues(q, string(r))
		}
	}
	return c
}
