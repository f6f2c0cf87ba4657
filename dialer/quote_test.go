package dialer

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
)

func TestQuoteIsTheEarliestDeadlineTheForecastKeeps(t *testing.T) {
	tests := []struct {
		name   string
		agents int
		queued int // promises already made, due every 10 minutes from now+5m
		floor  time.Duration
		want   time.Duration // -1: none can be kept
	}{
		{"an idle agent keeps the policy", 1, 0, 30 * time.Minute, 30 * time.Minute},
		{"three promises ahead of the policy's deadline push the quote out", 1, 3, 15 * time.Minute, 30 * time.Minute},
		{"two agents halve the wait", 2, 3, 15 * time.Minute, 15 * time.Minute},
		{"never earlier than the policy", 3, 0, time.Hour, time.Hour},
		{"nobody on the rota: no quote", 0, 2, time.Hour, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := monday.Add(9 * time.Hour)
			in := ForecastInput{Now: now, Handle: 10 * time.Minute}
			for i := range tt.agents {
				in.Agents = append(in.Agents, ForecastAgent{ID: string(rune('a' + i))})
			}
			for i := range tt.queued {
				in.Promises = append(in.Promises, ForecastPromise{ID: string(rune('p' + i)), Deadline: now.Add(time.Duration(i*10+5) * time.Minute)})
			}
			got, ok := QuoteFrom(in, now.Add(tt.floor))
			if tt.want < 0 {
				if ok {
					t.Fatalf("quoted %s with nobody on the rota", got)
				}
				return
			}
			if !ok || !got.Equal(now.Add(tt.want)) {
				t.Fatalf("quote now+%s (ok %v), want now+%s", got.Sub(now), ok, tt.want)
			}
			// The quote is kept and makes none of the promises already made late.
			probe := in
			probe.Promises = append(append([]ForecastPromise(nil), in.Promises...), ForecastPromise{ID: quoteID, Deadline: got})
			if n := CountAtRisk(Forecast(probe)); n != CountAtRisk(Forecast(in)) {
				t.Errorf("with the quoted promise %d are at risk, without it %d", n, CountAtRisk(Forecast(in)))
			}
		})
	}
}

func TestAPromiseThePolicyCannotKeepIsMadeAndFlagged(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, []string{"reception", "support"})
	f := newIntakeFixture(t, func(o *IntakeOptions) {
		// Nobody is on the rota (the pool is empty): no deadline can be kept.
		o.Quote = NewForecaster(o.Policy, o.Store.(ScheduleReader), NewPool(nil, o.Clock, nil), nil).Quote
		o.Metrics = m
	})
	f.in.Request(voicemailFor("+31201234502", "1003"))
	got := f.next(t)
	if got.Err != nil {
		t.Fatalf("refused: %v", got.Err)
	}
	if !got.Job.AtRiskFromStart {
		t.Errorf("promise %s not flagged at risk from the start", got.Job.ID)
	}
	var pb dto.Metric
	if err := m.riskStart.WithLabelValues("support", "voicemail").Write(&pb); err != nil {
		t.Fatal(err)
	}
	if n := pb.GetCounter().GetValue(); n != 1 {
		t.Errorf("callbackd_promises_at_risk_from_start_total = %v, want 1", n)
	}
}

// tickingClock moves on a millisecond every time it is read, as a real clock does between two
// readings; the intake must judge a promise by the one instant it was made at.
type tickingClock struct{ *clock.Fake }

func (c tickingClock) Now() time.Time {
	now := c.Fake.Now()
	c.Fake.Advance(time.Millisecond)
	return now
}

// A promise the staff can keep is not flagged: the quote is asked for the instant its
// deadline was computed, not for a moment later (which put the quote a few milliseconds after
// every policy deadline and flagged every promise).
func TestAPromiseTheStaffCanKeepIsNotFlagged(t *testing.T) {
	f := newIntakeFixture(t, func(o *IntakeOptions) {
		o.Clock = tickingClock{clock.NewFake(t0)}
		pool := NewPool(o.Policy.Agents, o.Clock, nil)
		// Anna, who serves support, is registered and idle.
		pool.HandleEvent(&ari.Event{Type: ari.EventDeviceStateChanged, AsteriskID: "pbx1",
			DeviceState: &ari.DeviceState{Name: "PJSIP/1003", State: "NOT_INUSE"}})
		o.Quote = NewForecaster(o.Policy, o.Store.(ScheduleReader), pool, nil).Quote
	})
	f.in.Request(voicemailFor("+31201234502", "1003"))
	got := f.next(t)
	if got.Err != nil {
		t.Fatalf("refused: %v", got.Err)
	}
	if got.Job.AtRiskFromStart {
		t.Errorf("promise %s flagged at risk from the start although a free agent can keep it by %v", got.Job.ID, got.Job.Deadline)
	}
}
