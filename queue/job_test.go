package queue

import (
	"strings"
	"testing"
)

func TestEveryStateParsesByItsNameAndNothingElseDoes(t *testing.T) {
	for _, s := range States() {
		if got, err := ParseState(string(s)); err != nil || got != s {
			t.Errorf("ParseState(%q) = %q, %v; want the state itself", s, got, err)
		}
	}
	for _, bad := range []string{"", "taken", "Pending", "waiting"} {
		_, err := ParseState(bad)
		if err == nil || !strings.Contains(err.Error(), "known: pending, dialing") {
			t.Errorf("ParseState(%q) error = %v; want one listing the known states", bad, err)
		}
	}
}

func TestEveryReasonIsValidAndNothingElseIs(t *testing.T) {
	for _, r := range Reasons() {
		if !r.valid() {
			t.Errorf("reason %q is listed but not valid", r)
		}
	}
	for _, bad := range []Reason{"", "fax", "Voicemail"} {
		if bad.valid() {
			t.Errorf("reason %q is valid; want only the listed reasons", bad)
		}
	}
}
