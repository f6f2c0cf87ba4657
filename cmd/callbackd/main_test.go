package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every subcommand answers -h with its usage and exit 0, and an unknown flag with exit 2,
// writing nothing on stdout either way (scripts read stdout).
func TestEverySubcommandHasHelpAndRefusesUnknownFlags(t *testing.T) {
	prefix := map[string][]string{"config": {"check"}} // config's flags follow its verb
	for name := range commands() {
		for _, tc := range []struct {
			flag     string
			wantCode int
			wantErr  string
		}{
			{"-h", 0, "usage: callbackd " + name},
			{"--no-such-flag", 2, "no-such-flag"},
		} {
			var out, errOut bytes.Buffer
			args := append(append([]string{name}, prefix[name]...), tc.flag)
			code := dispatch(context.Background(), args, &out, &errOut)
			if code != tc.wantCode || out.Len() != 0 || !strings.Contains(errOut.String(), tc.wantErr) {
				t.Errorf("callbackd %s: exit %d, stdout %q, stderr %q; want exit %d, no stdout, stderr naming %q",
					strings.Join(args, " "), code, out.String(), errOut.String(), tc.wantCode, tc.wantErr)
			}
		}
	}
}
