package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/callbackd/callbackd/queue"
)

// An operator answering a data-subject request types the number as the customer gave it:
// export shows all of it, erase deletes it and says what went, and the others stay.
func TestCustomerExportThenEraseInAnySpelling(t *testing.T) {
	cfgFile, environ, clk := promisesFixture(t)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := runCustomerWithEnv(context.Background(), args, environ, clk, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	jobsIn := func(js string) int {
		var recs queue.CustomerRecords
		if err := json.Unmarshal([]byte(js), &recs); err != nil {
			t.Fatalf("export is not JSON: %v\n%s", err, js)
		}
		n := 0
		for _, q := range recs.Queues {
			n += len(q.Jobs)
		}
		return n
	}
	code, out, errOut := run("export", "-c", cfgFile, "020", "123", "4502")
	if code != 0 || jobsIn(out) != 1 || !strings.Contains(out, `"number": "+31201234502"`) {
		t.Fatalf("export of a national spelling: exit %d, stdout %s, stderr %s; want the one promise in full", code, out, errOut)
	}
	code, out, errOut = run("erase", "-c", cfgFile, "+31 (0)20-123 45 02")
	if code != 0 || !strings.Contains(out, "erased everything stored about +31*******02") ||
		!strings.Contains(out, "queue support: 1 promises") || strings.Contains(out, "+31201234502") {
		t.Fatalf("erase: exit %d, stdout %s, stderr %s; want what was deleted, the number masked", code, out, errOut)
	}
	if code, out, _ = run("export", "-c", cfgFile, "+31201234502"); code != 0 || jobsIn(out) != 0 {
		t.Errorf("export after the erase: exit %d, %s; want nothing", code, out)
	}
	if code, out, _ = run("export", "-c", cfgFile, "+31201234505"); code != 0 || jobsIn(out) != 1 {
		t.Errorf("another customer after the erase: exit %d, %s; want their promise still there", code, out)
	}
	for _, bad := range [][]string{
		{"erase", "-c", cfgFile, "not-a-number"},
		{"erase", "-c", cfgFile},
		{"export", "+31201234505"},
		{"forget", "-c", cfgFile, "+31201234505"},
	} {
		if code, _, errOut := run(bad...); code != 2 || errOut == "" {
			t.Errorf("customer %v: exit %d, stderr %q; want 2 with the problem named", bad, code, errOut)
		}
	}
}
