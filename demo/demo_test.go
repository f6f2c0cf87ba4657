package demo_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/demo"
	"github.com/callbackd/callbackd/internal/redistest"
)

// The demo is the README's first command: it must run the real daemon (fake Asterisk over
// HTTP/WebSocket, detector, intake, promise store, dispatcher) and show what a PBX
// administrator expects from the scripted calls: promises made, an agent who does not answer,
// a busy customer who ends unreachable, the rest kept, and a CRM told each outcome by a signed
// webhook. The test runs it against a real redis-server.
func TestDemoKeepsThePromisesItMakes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := demo.Run(ctx, demo.Settings{RedisAddr: srv.Addr(), Speed: 50, Listen: "127.0.0.1:0"}, &out); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`ARI: connected to fake-pbx`),
		regexp.MustCompile(`MADE: call back \+31\*+01 \(unanswered_transfer → 1003\) in queue support`),
		regexp.MustCompile(`MADE: call back \+31\*+02 \(voicemail → 1003\) in queue support`),
		regexp.MustCompile(`MADE: call back \+31\*+04 \(voicemail → 1003\) in queue support`),
		regexp.MustCompile(`MADE: call back \+31\*+05 \(unanswered_transfer → 1004\) in queue reception`),
		regexp.MustCompile(`ringing agent anna .*\n(.*\n)*.*back in the queue \(agent anna did not answer\)`),
		regexp.MustCompile(`ringing agent bob \(their phone shows \+31\*+01\)`),
		regexp.MustCompile(`bob answered; whisper: sound:callbackd-callback-for,digits:31\*+01,sound:callbackd-reason-unanswered-transfer`),
		regexp.MustCompile(`dialling \+31\*+01 with caller id \+31205550100; bob hears ringback`),
		regexp.MustCompile(`\+31\*+01 answered \(pressed 1 where asked\); bridged with bob`),
		regexp.MustCompile(`customer busy; attempt 2/3 in 2m`),
		regexp.MustCompile(`LATE: connected after the deadline`),
		regexp.MustCompile(`UNREACHABLE after 3 attempts`),
		regexp.MustCompile(`KEPT: connected before the deadline`),
		regexp.MustCompile(`7 customer calls: 5 promises made`),
		regexp.MustCompile(`PROMISES\s+KEPT\s+LATE\s+UNREACHABLE\s+KEPT RATIO\s+MEDIAN TIME TO CALLBACK\n5\s+3\s+1\s+1\s+60 %\s+\d`),
		regexp.MustCompile(`agent no_answer [1-9]`),
		regexp.MustCompile(`customer busy 3`),
		// The forecast's prediction beside each promise made, and its score beside the outcome.
		regexp.MustCompile(`promise …\w{6}: (forecast|AT RISK FROM THE START: .*; forecast): connected about \d\d:\d\d(:\d\d)?, (before|after|just after) the deadline \d\d:\d\d(:\d\d)?`),
		regexp.MustCompile(`Forecast when each promise was made: [0-5] of 5 kept; measured: 3 kept\.`),
	} {
		if !want.MatchString(got) {
			t.Errorf("demo output lacks %q\n%s", want, got)
		}
	}
	// The demo's CRM got a signed webhook for each finished promise, once, before the summary.
	for outcome, n := range map[string]int{"kept": 3, "late": 1, "unreachable": 1} {
		re := regexp.MustCompile(`webhook crm: ` + outcome + ` for promise …\w{6} \(\+31\*+\d\d\), signature verified\n`)
		if got := len(re.FindAllString(strings.Split(got, "Promises in Redis")[0], -1)); got != n {
			t.Errorf("%d webhooks %q before the summary; want %d", got, outcome, n)
		}
	}
	if strings.Contains(got, "delivery refused") {
		t.Errorf("the demo CRM refused a delivery:\n%s", got)
	}
	for _, never := range []string{"+31*******03", "+31*******06"} { // hung up in the greeting; talked to Ria
		if strings.Contains(got, "call back "+never) {
			t.Errorf("demo made a promise for %s, whose call needs no callback", never)
		}
	}
	if strings.Contains(got, "+31201234") {
		t.Errorf("demo output shows an unmasked number:\n%s", got)
	}
	// The promises are really in Redis, under the demo's own prefix.
	keys, err := srv.Client().Keys(context.Background(), "callbackd-demo:*").Result()
	if err != nil || len(keys) == 0 {
		t.Errorf("no demo keys in Redis (%v)", err)
	}
}

func TestDemoConfigIsAValidConfigFile(t *testing.T) {
	if _, err := config.Parse([]byte(demo.ConfigYAML), nil); err != nil {
		t.Fatalf("the demo's config does not pass validation: %v", err)
	}
}
