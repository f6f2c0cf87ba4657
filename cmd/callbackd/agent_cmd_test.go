package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// A supervisor pauses an agent from a shell and logs them back in: the presence is kept in
// Redis, where every daemon reads it, and list shows it with who said so.
func TestAgentPresenceFromTheCommandLine(t *testing.T) {
	cfgFile, environ, clk := promisesFixture(t)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := runAgentWithEnv(context.Background(), args, environ, clk, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, out, errOut := run("pause", "-c", cfgFile, "--by", "supervisor", "bob"); code != 0 || out != "agent bob: paused (was logged_in)\n" {
		t.Fatalf("pause: exit %d, %q, %q", code, out, errOut)
	}
	code, out, errOut := run("list", "-c", cfgFile, "--json")
	if code != 0 {
		t.Fatalf("list: exit %d, %s", code, errOut)
	}
	var rows []agentRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("list --json is not JSON: %v\n%s", err, out)
	}
	got := map[string]agentRow{}
	for _, r := range rows {
		got[r.ID] = r
	}
	if got["bob"].Presence != "paused" || got["bob"].By != "supervisor" || got["bob"].Since.IsZero() ||
		got["anna"].Presence != "logged_in" || len(rows) != 3 {
		t.Errorf("list = %+v; want bob paused by the supervisor, the others logged in", rows)
	}
	if code, out, _ := run("resume", "-c", cfgFile, "--json", "bob"); code != 0 || !strings.Contains(out, `"presence":"logged_in"`) || !strings.Contains(out, `"was":"paused"`) {
		t.Errorf("resume --json: exit %d, %s", code, out)
	}
	if code, out, _ := run("list", "-c", cfgFile); code != 0 || !strings.Contains(out, "AGENT") || !strings.Contains(out, "bob") {
		t.Errorf("list: exit %d, %s; want a table", code, out)
	}
	for _, bad := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"pause", "-c", cfgFile, "mallory"}, 1, `no agent "mallory"`},
		{[]string{"pause", "-c", cfgFile}, 2, "one AGENT id"},
		{[]string{"pause", "bob"}, 2, "-c FILE is required"},
		{[]string{"nap", "-c", cfgFile, "bob"}, 2, `unknown verb "nap"`},
		{[]string{"list", "-c", cfgFile, "bob"}, 2, "none for list"},
	} {
		if code, _, errOut := run(bad.args...); code != bad.code || !strings.Contains(errOut, bad.says) {
			t.Errorf("agent %v: exit %d, stderr %q; want %d saying %q", bad.args, code, errOut, bad.code, bad.says)
		}
	}
}
