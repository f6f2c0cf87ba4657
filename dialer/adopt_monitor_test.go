package dialer

import (
	"testing"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// Which of the monitor app's events the janitor acts on: the legs of callbacks in another
// daemon's control application (an older daemon's unsuffixed "callbackd" among them), and the
// end of the legs it adopted wherever they sit. Its own control app's legs come through that
// app; a leg in no Stasis application is still ringing and no callback's conversation yet.
func TestTheJanitorHeedsTheMonitorAboutLegsInAnotherDaemonsApp(t *testing.T) {
	agent, customer, _ := ari.CallbackIDs("01M83T4VMYW2THQ2AJPN3ZN32E", 7)
	adoptedAgent, adoptedCustomer, adoptedBridge := ari.CallbackIDs("01M83T4VMYW2THQ2AJPN3ZN32F", 3)
	inApp := func(id, app string) *ari.Channel {
		return &ari.Channel{ID: id, State: "Up", Dialplan: ari.Dialplan{AppName: "Stasis", AppData: app + ",agent,x"}}
	}
	store, err := queue.New(redistest.Start(t, redistest.Options{}).Client(), queue.Options{Queues: []string{"support"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		ev    ari.Event
		looks bool // a look at the Asterisk is queued
		ends  bool // an adopted conversation's end is queued
	}{
		{"a leg in another daemon's control app", ari.Event{Type: ari.EventChannelStateChange, Channel: inApp(agent, "callbackd-b")}, true, false},
		{"a leg in an older daemon's unsuffixed app", ari.Event{Type: ari.EventChannelVarset, Channel: inApp(customer, "callbackd")}, true, false},
		{"a leg in this daemon's own control app", ari.Event{Type: ari.EventChannelStateChange, Channel: inApp(agent, "callbackd-a")}, false, false},
		{"a leg still ringing, in no Stasis app", ari.Event{Type: ari.EventChannelStateChange,
			Channel: &ari.Channel{ID: agent, State: "Ringing", Dialplan: ari.Dialplan{AppName: "AppDial2", AppData: "(Outgoing Line)"}}}, false, false},
		{"a channel that is not a callback leg", ari.Event{Type: ari.EventChannelStateChange, Channel: inApp("1795351449.63", "callbackd-b")}, false, false},
		{"the end of a leg in another app, not adopted", ari.Event{Type: ari.EventChannelDestroyed, Channel: inApp(agent, "callbackd-b")}, false, false},
		{"the end of an adopted leg", ari.Event{Type: ari.EventChannelDestroyed, Channel: &ari.Channel{ID: adoptedCustomer}}, false, true},
		{"a bridge event", ari.Event{Type: ari.EventBridgeCreated, Bridge: &ari.Bridge{ID: "cbd-01m83t4vmyw2thq2ajpn3zn32e-7"}}, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j, err := NewJanitor(JanitorOptions{Promises: store, Queues: []string{"support"}, Control: NewControl(),
				PBX: func(string) (JanitorREST, bool) { return nil, false }, Clock: clock.NewFake(monday10),
				ControlApps: []string{"callbackd-a"}})
			if err != nil {
				t.Fatal(err)
			}
			c := &conversation{asterisk: "pbx", bridge: adoptedBridge, agent: adoptedAgent, customer: adoptedCustomer}
			j.adopted[adoptedBridge], j.byLeg[adoptedAgent], j.byLeg[adoptedCustomer] = c, c, c
			ev := tt.ev
			ev.AsteriskID = "pbx"
			j.Monitor().HandleEvent(&ev)
			var looks, ends bool
			for _, w := range j.work {
				looks = looks || w.ended == "" && w.snap == nil
				ends = ends || w.ended == adoptedCustomer
			}
			if looks != tt.looks || ends != tt.ends {
				t.Errorf("look queued %v, end queued %v; want %v, %v", looks, ends, tt.looks, tt.ends)
			}
		})
	}
}

// What the janitor hears of another daemon's callback through the monitor includes the digit
// its customer pressed: a queue that asks for a confirm digit records the conversation only
// when it was pressed, and the monitor is the only stream carrying that leg's events here.
func TestTheJanitorHearsTheConfirmDigitOfAnotherDaemonsCustomer(t *testing.T) {
	_, customer, bridge := ari.CallbackIDs("01M83T4VMYW2THQ2AJPN3ZN32E", 7)
	store, err := queue.New(redistest.Start(t, redistest.Options{}).Client(), queue.Options{Queues: []string{"support"}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := NewJanitor(JanitorOptions{Promises: store, Queues: []string{"support"}, Control: NewControl(),
		PBX: func(string) (JanitorREST, bool) { return nil, false }, Clock: clock.NewFake(monday10),
		ControlApps: []string{"callbackd-a"}})
	if err != nil {
		t.Fatal(err)
	}
	leg := &ari.Channel{ID: customer, State: "Up", Dialplan: ari.Dialplan{AppName: "Stasis", AppData: "callbackd-b,customer,x"}}
	for _, ev := range []ari.Event{
		{Type: ari.EventChannelStateChange, AsteriskID: "pbx", Channel: leg},
		{Type: ari.EventChannelDtmfReceived, AsteriskID: "pbx", Channel: leg, Digit: "1"},
	} {
		j.Monitor().HandleEvent(&ev)
	}
	tk := j.talked[bridge]
	if tk == nil || tk.digits != "1" {
		t.Fatalf("heard %+v; want the answer and the digit 1", tk)
	}
}
