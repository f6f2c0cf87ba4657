package config

import (
	"errors"
	"strings"
	"testing"
)

// A command that never contacts Asterisk loads a file without ARI credentials; the daemon's
// use still demands them, and every other check applies to both.
func TestOfflineUseNeedsNoARICredentials(t *testing.T) {
	const noCredentials = `
asterisk:
  - name: pbx1
    url: http://127.0.0.1:8088/ari
queues:
  - name: support
`
	const badQueueNoCredentials = noCredentials + "    max_attempts: 0\n"
	tests := []struct {
		name  string
		use   Use
		yaml  string
		wants []string // problems, by path; none = loads
	}{
		{"daemon demands username and password", UseDaemon, noCredentials,
			[]string{"asterisk[0].username: required", "asterisk[0].password: required"}},
		{"offline loads without them", UseOffline, noCredentials, nil},
		{"offline still checks the rest", UseOffline, badQueueNoCredentials, []string{"queues[0].max_attempts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEnvironFor(tt.use, []byte(tt.yaml), nil)
			if len(tt.wants) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			for _, w := range tt.wants {
				if !strings.Contains(verr.Error(), w) {
					t.Errorf("problems %q do not include %q", verr.Error(), w)
				}
			}
			if tt.use == UseOffline && strings.Contains(verr.Error(), "password") {
				t.Errorf("offline use asked for the password: %v", verr)
			}
		})
	}
}
