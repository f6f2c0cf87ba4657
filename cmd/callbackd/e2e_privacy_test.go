package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/queue"
)

// With debug logging, a kept callback and one whose customer leg Asterisk refuses to create
// (500 "Allocation failed", an error that quotes the dial string) leave no full customer
// number in the daemon's output, in any detail stored in Redis (history, outcome stream), in
// /metrics or in `promises --json` without --unmask.
func TestE2ENoFullCustomerNumberInLogsDetailsMetricsOrPromises(t *testing.T) {
	t.Parallel()
	pbx, rds := startE2EPBX(t), startE2ERedis(t)
	const kept, unavailable = "+31201234521", "+31201234522"
	pbx.SetEndpoint(ria.Endpoint, aritest.Answers(200*time.Millisecond))
	pbx.SetEndpoint(customerPhone(kept), talksFor(time.Second))
	pbx.SetEndpoint(customerPhone(unavailable), aritest.Behavior{Unavailable: true})
	s := e2eDefaults(rds.srv.Addr(), pbx, ria)
	s.MaxAttempts, s.LogLevel = 1, "debug"
	path := writeE2EConfig(t, s)
	d := startCallbackd(t, "callbackd", path)
	d.waitReady(1)

	pbx.leavesVoicemail(kept, "2008")
	pbx.leavesVoicemail(unavailable, "2009")

	var jobs []queue.Job
	eventually(t, "both promises settled", func() (bool, string) {
		jobs = rds.promises(t)
		open := 0
		for _, j := range jobs {
			if j.State.Open() {
				open++
			}
		}
		return len(jobs) == 2 && open == 0, fmt.Sprintf("%d promises, %d open", len(jobs), open)
	})
	var sawCreateFailure bool
	var stored []string
	for _, j := range jobs {
		for _, h := range j.History {
			stored = append(stored, h.Detail)
			sawCreateFailure = sawCreateFailure || strings.Contains(h.Detail, "creating the customer channel failed")
		}
	}
	if !sawCreateFailure {
		t.Errorf("no stored detail of the failed customer leg; histories %v", stored)
	}
	entries, err := rds.rdb.XRange(context.Background(), "callbackd:{"+e2eQueue+"}:events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		stored = append(stored, fmt.Sprint(e.Values["detail"]))
	}
	_, metrics := d.get("/metrics")
	code, listing := runCallbackdToExit(t, "promises", "-c", path, "--state", "all", "--json")
	if code != 0 {
		t.Fatalf("promises --json: exit %d\n%s", code, listing)
	}
	d.terminate()

	places := map[string]string{
		"the daemon's stdout and stderr": strings.Join(d.log.all(), "\n"),
		"the stored details":             strings.Join(stored, "\n"),
		"/metrics":                       metrics,
		"promises --json":                listing,
	}
	for where, text := range places {
		for _, n := range []string{kept, unavailable} {
			// The national significant number, so no form of it (E.164, digits, 0-prefixed) passes.
			if nsn := n[3:]; strings.Contains(text, nsn) {
				t.Errorf("%s carries the full number %s", where, n)
			}
		}
	}
	if !strings.Contains(listing, "+31*******21") {
		t.Errorf("promises --json does not show the masked number:\n%s", listing)
	}
}
