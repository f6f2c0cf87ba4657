package detect

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// An administrator who forgot `channelvars = CHANNEL(linkedid)` is told once, in words that
// say what to add where, and the detector keeps working with its fallback grouping.
func TestMissingLinkedIDChannelvarIsReportedOnce(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	d, rec := newTestDetector(t, Options{Logger: zap.New(core)})
	s := newSim(t)
	s.noLinkedID = true
	c := s.customer("c1", "+31201234501")
	p := s.phone("p1", "1003", "c1")
	s.created(c)
	s.dialplan(c, "Dial", "PJSIP/1003,10")
	s.created(p)
	s.dial(c, p, "")
	s.dial(c, p, "NOANSWER")
	s.destroyed(p, c)
	s.play(d)

	var warnings []string
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "channelvars = CHANNEL(linkedid)") {
			warnings = append(warnings, e.Message)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "ari.conf") {
		t.Errorf("warnings about the missing channelvar: %q; want exactly one naming ari.conf", warnings)
	}
	if got := strings.Join(rec.summary(), ","); got != "unanswered_transfer 1003 +31201234501" {
		t.Errorf("requests %q; the fallback grouping must still find the unanswered transfer", got)
	}
}
