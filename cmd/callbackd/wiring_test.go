package main

import (
	"testing"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/detect"
	"github.com/callbackd/callbackd/config"
)

// The monitor app's event filter is set by the connection; the detector must still get every
// event type it reads, or it would silently miss transfers or voicemail.
func TestMonitorEventFilterLetsThroughWhatTheDetectorReads(t *testing.T) {
	allowed := map[string]bool{}
	for _, e := range ari.DefaultMonitorEvents {
		allowed[e] = true
	}
	for _, e := range detect.EventTypes() {
		if !allowed[e] {
			t.Errorf("the detector reads %s but the monitor's event filter drops it", e)
		}
	}
}

func TestDetectorSettingsComeFromTheConfig(t *testing.T) {
	cfg, err := config.Parse([]byte(demoConfig+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Detector.InboundContexts = []string{"from-trunk"}
	opts, err := detectorFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.ControlApps) != 1 || opts.ControlApps[0] != "callbackd" {
		t.Errorf("control apps %v; want the configured control app", opts.ControlApps)
	}
	if !opts.InternalExtension.MatchString("1003") || opts.InternalExtension.MatchString("+31201234502") {
		t.Errorf("internal extension pattern %v does not tell extensions from numbers", opts.InternalExtension)
	}
	if !opts.CustomerNumber.MatchString("+31201234502") || opts.CustomerNumber.MatchString("1003") {
		t.Errorf("customer number pattern %v does not tell numbers from extensions", opts.CustomerNumber)
	}
	if len(opts.InboundContexts) != 1 || opts.InboundContexts[0] != "from-trunk" || opts.DefaultCountryCode != "31" {
		t.Errorf("inbound contexts %v, country code %q", opts.InboundContexts, opts.DefaultCountryCode)
	}
}
