package dialer

import (
	"testing"
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/queue"
)

const businessConfig = `
asterisk:
  - {name: pbx1, url: "http://127.0.0.1:8088/ari", username: callbackd, password: secret}
queues:
  - name: support
    retry_backoff: 10m
    owner_preference: 0.5
    calling_hours:
      timezone: Europe/Amsterdam
      open:
        - days: [mon, tue, wed, thu, fri]
          hours: ["08:30-12:00", "13:00-17:30"]
      holidays: NL
  - name: emergencies
    deadline_clock: wall
    retry_backoff: 10m
`

func TestDeadlinesRetriesAndHoldsUseTheQueuesClock(t *testing.T) {
	cfg, err := config.Parse([]byte(businessConfig), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p := PolicyFrom(cfg)
	support, _ := p.Queue("support")
	wall, _ := p.Queue("emergencies")
	loc, _ := time.LoadLocation("Europe/Amsterdam")
	at := func(d, h, m int) time.Time { return time.Date(2026, 11, d, h, m, 0, 0, loc) }
	tests := []struct {
		name                     string
		q                        QueuePolicy
		now                      time.Time
		reason                   queue.Reason
		deadline, retry, holdEnd time.Time
	}{
		// 4h voicemail at Monday 16:00: 1.5h today, 2.5h tomorrow = Tuesday 11:00; half of the
		// 4 open hours (2h) ends at Tuesday 09:00; a retry 10 open minutes later is 16:10.
		{"evening voicemail lands in the next morning", support, at(23, 16, 0), queue.ReasonVoicemail, at(24, 11, 0), at(23, 16, 10), at(24, 9, 0)},
		{"the lunch break does not count", support, at(23, 11, 0), queue.ReasonUnansweredTransfer, at(23, 14, 0), at(23, 11, 10), at(23, 12, 0)},
		{"made on friday night, counted from monday", support, at(27, 22, 0), queue.ReasonUnansweredTransfer, at(30, 10, 30), at(30, 8, 40), at(30, 9, 30)},
		{"a retry at closing waits for the morning", support, at(23, 17, 25), queue.ReasonUnansweredTransfer, at(24, 10, 25), at(24, 8, 35), at(24, 9, 25)},
		{"wall clock keeps today's behaviour", wall, at(23, 16, 0), queue.ReasonVoicemail, at(23, 20, 0), at(23, 16, 10), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dl, err := tt.q.DeadlineFrom(tt.now, tt.reason)
			if err != nil {
				t.Fatal(err)
			}
			if !dl.Equal(tt.deadline) {
				t.Errorf("deadline %s, want %s", dl.In(loc), tt.deadline)
			}
			if got := tt.q.RetryAt(tt.now); !got.Equal(tt.retry) {
				t.Errorf("retry at %s, want %s", got.In(loc), tt.retry)
			}
			if got := tt.q.HoldUntil(tt.now, dl); !got.Equal(tt.holdEnd) {
				t.Errorf("hold until %s, want %s", got.In(loc), tt.holdEnd)
			}
		})
	}
	if _, err := support.DeadlineFrom(at(23, 10, 0), "fax"); err == nil {
		t.Error("an unknown reason got a deadline")
	}
}
