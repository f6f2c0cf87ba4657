package ari_test

import (
	"slices"
	"testing"

	"github.com/callbackd/callbackd/ari"
)

type noting struct {
	name string
	log  *[]string
}

func (n noting) HandleEvent(ev *ari.Event) { *n.log = append(*n.log, n.name+" "+string(ev.Type)) }
func (n noting) Resync(s ari.Snapshot)     { *n.log = append(*n.log, n.name+" resync "+s.AsteriskID) }

func TestHandlersHandEverythingToEachInTurn(t *testing.T) {
	var log []string
	hs := ari.Handlers{noting{"detector", &log}, noting{"pool", &log}}
	hs.Resync(ari.Snapshot{AsteriskID: "pbx1"})
	hs.HandleEvent(&ari.Event{Type: ari.EventDeviceStateChanged})
	want := []string{"detector resync pbx1", "pool resync pbx1", "detector DeviceStateChanged", "pool DeviceStateChanged"}
	if !slices.Equal(log, want) {
		t.Errorf("got %q, want %q", log, want)
	}
}
