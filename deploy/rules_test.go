package deploy_test

import (
	"os"
	"regexp"
	"testing"
)

// Every alert has a promtool unit test (make rules-test runs them; CI installs promtool).
func TestEveryAlertHasAPromtoolTest(t *testing.T) {
	rules, err := os.ReadFile("prometheus/callbackd.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("prometheus/callbackd.rules_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*- alertname: (\S+)`).FindAllStringSubmatch(string(tests), -1) {
		tested[m[1]] = true
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) == 0 {
		t.Fatal("no alerts found in callbackd.rules.yml")
	}
	for _, m := range alerts {
		if !tested[m[1]] {
			t.Errorf("alert %s has no test in callbackd.rules_test.yml", m[1])
		}
	}
}
