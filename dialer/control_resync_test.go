package dialer

import (
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/queue"
)

// A resync reports as gone only the watched channels Asterisk is known to have had: a leg whose
// create request has not returned yet (or was not even sent) is simply not listed yet.
func TestResyncReportsGoneOnlyChannelsKnownToExist(t *testing.T) {
	tests := []struct {
		name      string
		known     func(c *Control) // what Control learnt about cbd-1-customer before the resync
		restarted bool
		want      ari.EventType // "" for nothing
	}{
		{name: "requested, reply not back", known: func(*Control) {}, want: ""},
		{name: "create returned", known: func(c *Control) { c.Created("cbd-1-customer") }, want: EventGone},
		{name: "an event named it", known: func(c *Control) {
			c.HandleEvent(&ari.Event{Type: ari.EventStasisStart, AsteriskID: "ast1", Channel: &ari.Channel{ID: "cbd-1-customer"}})
		}, want: EventGone},
		{name: "asterisk restarted", known: func(*Control) {}, restarted: true, want: EventGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewControl()
			in := newInbox()
			c.Watch("ast1", "cbd-1-customer", in)
			tt.known(c)
			for in.take() != nil {
			}
			c.Resync(ari.Snapshot{AsteriskID: "ast1", Restarted: tt.restarted})
			var got ari.EventType
			if ev := in.take(); ev != nil {
				got = ev.Type
			}
			if got != tt.want {
				t.Errorf("after a resync without the channel: %q, want %q", got, tt.want)
			}
		})
	}
}

// The ARI socket drops while the agent hears the whisper, before the customer leg exists: the
// reconnect's resync does not list that leg, and must not make the customer who then answers
// count as failed.
func TestAResyncBeforeTheCustomerLegExistsDoesNotFailTheCustomer(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	r.drainOnCleanup()
	job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
	r.waitFor("the whisper", func() bool { _, ok := r.stepAt(job.ID, StepWhisper); return ok })
	r.pbx.DropWebSockets()
	got := r.settled(job.ID)
	if got.State != queue.StateKept || got.Attempts != 0 {
		t.Errorf("promise %s with %d attempts after a resync during the whisper; want kept\n%s", got.State, got.Attempts, r.story())
	}
}
