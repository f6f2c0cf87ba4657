package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

// An agent whose shift is not today is never rung, although their phone is registered, idle
// and would answer: two promises wait for the one agent on shift instead.
func TestE2EAgentOffShiftIsNeverRung(t *testing.T) {
	t.Parallel()
	pbx, rds := startE2EPBX(t), startE2ERedis(t)
	s := e2eDefaults(rds.srv.Addr(), pbx)
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil {
		t.Fatal(err)
	}
	today := clock.Real{}.Now().In(loc).Format("2006-01-02")
	offToday := fmt.Sprintf(`{week: [{days: [mon, tue, wed, thu, fri, sat, sun], hours: ["00:00-24:00"]}], except: [{date: "%s"}]}`, today)
	s.Agents = []e2eAgent{{ID: "ria", Endpoint: ria.Endpoint, Extension: ria.Extension, Shifts: offToday}, bob}
	const first, second = "+31201234501", "+31201234502"
	pbx.SetEndpoint(ria.Endpoint, aritest.Answers(200*time.Millisecond))
	pbx.SetEndpoint(bob.Endpoint, aritest.Answers(500*time.Millisecond))
	pbx.SetEndpoint(customerPhone(first), talksFor(2*time.Second))
	pbx.SetEndpoint(customerPhone(second), talksFor(time.Second))
	d := startCallbackd(t, "callbackd", writeE2EConfig(t, s))
	d.waitReady(1)
	if got := d.metric("callbackd_agents", map[string]string{"state": "off_shift"}); got != 1 {
		t.Errorf("callbackd_agents{state=off_shift} = %v, want 1 (ria)", got)
	}

	pbx.leavesVoicemail(first, "2001")
	pbx.leavesVoicemail(second, "2002")
	eventually(t, "both promises kept by bob", func() (bool, string) {
		kept := 0
		for _, j := range rds.promises(t) {
			if j.State == queue.StateKept {
				kept++
			}
		}
		return kept == 2, fmt.Sprintf("%d kept", kept)
	})
	if n := len(pbx.channelsFor(ria.Endpoint)); n != 0 {
		t.Errorf("ria, off shift, was rung %d times", n)
	}
	if n := len(pbx.channelsFor(bob.Endpoint)); n != 2 {
		t.Errorf("bob rung %d times; want twice", n)
	}
	if code := d.terminate(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
