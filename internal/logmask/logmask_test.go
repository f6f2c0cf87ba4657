package logmask

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestEveryFieldAndTheMessageAreMasked(t *testing.T) {
	obs, logs := observer.New(zap.DebugLevel)
	log := zap.New(Core(obs)).With(zap.String("channel", "PJSIP/+31201234567@provider"))
	log.Debug("dialling 0201234567",
		zap.Error(errors.New("create channel PJSIP/+31201234567@provider: 500 Allocation failed")),
		zap.Strings("numbers", []string{"+31201234567"}),
		zap.Stringer("who", stringer("+31612345678")),
		zap.String("linkedid", "1795351341.53"),
		zap.Int("attempts", 3))
	all := logs.All()
	if len(all) != 1 {
		t.Fatalf("%d entries", len(all))
	}
	e := all[0]
	text := e.Message
	for k, v := range e.ContextMap() {
		text += fmt.Sprintf(" %s=%v", k, v)
	}
	for _, leak := range []string{"1234567", "12345678"} {
		if strings.Contains(text, leak) {
			t.Errorf("entry leaks %q: %s", leak, text)
		}
	}
	for _, keep := range []string{"+31*******67", "1795351341.53", "attempts=3", "500 Allocation failed"} {
		if !strings.Contains(text, keep) {
			t.Errorf("entry lost %q: %s", keep, text)
		}
	}
}

type stringer string

func (s stringer) String() string { return string(s) }
