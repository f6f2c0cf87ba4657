package ari

import "testing"

func TestCallbackLegIDs(t *testing.T) {
	agent, customer, bridge := CallbackIDs("01M83T4VMYW2THQ2AJPN3ZN32E", 7)
	if agent != "cbd-01m83t4vmyw2thq2ajpn3zn32e-7-agent" || customer != "cbd-01m83t4vmyw2thq2ajpn3zn32e-7-customer" ||
		bridge != "cbd-01m83t4vmyw2thq2ajpn3zn32e-7" {
		t.Errorf("ids: %q %q %q", agent, customer, bridge)
	}
	for _, tt := range []struct {
		id   string
		legs bool
	}{
		{agent, true},
		{customer, true},
		{bridge, false},                          // a bridge, not a leg
		{"cbd-01m83t-x-agent", false},            // token not a number
		{"cbd--7-agent", false},                  // no promise
		{"cbd-01M83T-7-agent", false},            // the dialer lower-cases promise ids
		{"job-08-agent", false},                  // the recorder's own legs (trace 08)
		{"1796160146.67", false},                 // Asterisk's ids (the recall of trace 14)
		{"cbd-01m83t-7-agent;2", false},          // a Local half Asterisk named itself
		{"xcbd-01m83t4vmyw2-7-customer", false},  // prefix only at the start
		{"cbd-01m83t4vmyw2-7-customer-x", false}, // suffix only at the end
	} {
		if got := IsCallbackLeg(tt.id); got != tt.legs {
			t.Errorf("IsCallbackLeg(%q) = %v, want %v", tt.id, got, tt.legs)
		}
	}
}

// A daemon that did not create a callback's channels finds its promise and claim in their ids.
func TestParseCallbackIDNamesThePromiseTheClaimAndTheLeg(t *testing.T) {
	agent, customer, bridge := CallbackIDs("01M83T4VMYW2THQ2AJPN3ZN32E", 7)
	for _, tt := range []struct {
		id   string
		want CallbackID
		ok   bool
	}{
		{agent, CallbackID{Promise: "01m83t4vmyw2thq2ajpn3zn32e", Token: 7, Leg: LegAgent, Bridge: bridge}, true},
		{customer, CallbackID{Promise: "01m83t4vmyw2thq2ajpn3zn32e", Token: 7, Leg: LegCustomer, Bridge: bridge}, true},
		{bridge, CallbackID{Promise: "01m83t4vmyw2thq2ajpn3zn32e", Token: 7, Bridge: bridge}, true},
		{bridge + "-whisper", CallbackID{}, false}, // a playback id, not a channel or bridge
		{"cbd-01m83t-x", CallbackID{}, false},
		{"1796160146.67", CallbackID{}, false},
	} {
		got, ok := ParseCallbackID(tt.id)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseCallbackID(%q) = %+v, %v; want %+v, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
}
