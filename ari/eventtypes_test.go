package ari_test

import (
	"testing"

	"github.com/callbackd/callbackd/ari"
)

// The monitor's event filter asks Asterisk for types the connection then delivers: a type in
// the filter that the connection does not know would be sent over the socket only to be
// counted as unknown and dropped.
func TestEveryFilteredEventTypeIsDelivered(t *testing.T) {
	for _, typ := range ari.DefaultMonitorEvents {
		if !ari.KnownEventType(typ) {
			t.Errorf("%s is in DefaultMonitorEvents but not a known event type", typ)
		}
	}
}
