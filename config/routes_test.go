package config

import "testing"

// TestRouteMatchers: each match key reads what the customer asked for the way Asterisk spells it.
func TestRouteMatchers(t *testing.T) {
	tests := []struct {
		route Route
		value string
		match bool
	}{
		{Route{AsteriskQueue: "sales"}, "sales", true},
		{Route{AsteriskQueue: "sales"}, "sales-2", false},
		{Route{Extension: "1003"}, "1003", true},
		{Route{Extension: "1003"}, "10030", false},
		{Route{Extension: "_10XX"}, "1042", true},
		{Route{Extension: "_10XX"}, "104", false},
		{Route{Extension: "_10XX"}, "10423", false},
		{Route{Extension: "_1[0-4]ZN"}, "1412", true},
		{Route{Extension: "_1[0-4]ZN"}, "1512", false},
		{Route{Extension: "_1[0-4]ZN"}, "1401", false}, // Z is 1-9
		{Route{Extension: "_1[0-4]ZN"}, "1411", false}, // N is 2-9
		{Route{Extension: "_2."}, "2", false},          // . is one or more
		{Route{Extension: "_2."}, "2001", true},
		{Route{Extension: "_2!"}, "2", true}, // ! is zero or more
		{Route{DID: "_+3120555020X"}, "+31205550206", true},
		{Route{DID: "_+3120555020X"}, "+31205550216", false},
		{Route{DID: "+31205550206"}, "+31205550206", true},
		{Route{RingGroup: "PJSIP/1001&PJSIP/1002"}, "PJSIP/1002&PJSIP/1001,20,t", true},
		{Route{RingGroup: "PJSIP/1001&PJSIP/1002"}, "pjsip/1001 & pjsip/1002", true}, // spacing and technology case do not matter
		{Route{RingGroup: "PJSIP/anna&PJSIP/bob"}, "PJSIP/Anna&PJSIP/bob", false},    // resources keep their case
		{Route{RingGroup: "PJSIP/1001&PJSIP/1002"}, "PJSIP/1001", false},
		{Route{RingGroup: "PJSIP/1001&PJSIP/1002"}, "", false},
		{Route{Context: "from-trunk"}, "from-trunk", true},
		{Route{Context: "from-trunk"}, "from-trunk-2", false},
	}
	for _, tt := range tests {
		if got := tt.route.Matcher()(tt.value); got != tt.match {
			t.Errorf("%+v on %q: %v, want %v", tt.route, tt.value, got, tt.match)
		}
	}
}

func TestDialplanPatternErrors(t *testing.T) {
	for _, p := range []string{"_", "10XX", "_1[]", "_1[a-z]", "_1 2", "_1]"} {
		if _, err := DialplanPattern(p); err == nil {
			t.Errorf("DialplanPattern(%q) accepted", p)
		}
	}
}
