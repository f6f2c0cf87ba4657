package dialer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/queue"
)

// The customer must see the company's caller id (dialer.caller_id), set as CONNECTEDLINE when
// the leg is created. Asterisk's /channels/{id}/dial?caller=X copies X's caller id over the
// dialled channel's connected line (resource_channels.c, ast_ari_channels_dial:
// ast_connected_line_copy_from_caller), and chan_pjsip puts the connected line in the From of
// the INVITE. The agent leg's caller id is the customer's own name and number (so the agent
// knows who it is), so dialling the customer with caller=<agent leg> shows the customers their
// own number. The customer leg must be dialled without a caller.
func TestCustomerLegIsDialledWithoutACallerSoTheCustomerSeesTheCompanyCallerID(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	job := r.enqueue(customer1, "voicemail", "1003", 2*time.Hour)
	if got := r.settled(job.ID); got.State != queue.StateKept {
		t.Fatalf("promise = %s; want kept", got.State)
	}
	dials := r.requested("POST /ari/channels/cbd-", "/dial")
	if len(dials) != 1 {
		t.Fatalf("customer dials = %q; want exactly one", dials)
	}
	if with := r.requested("POST /ari/channels/cbd-", "/dial", "caller="); len(with) != 0 {
		t.Errorf("the customer leg was dialled with a caller: %q; Asterisk would show the customer the agent leg's caller id, i.e. the customer's own number, instead of %s",
			with, r.cfg.Dialer.CallerID.Number)
	}
}

// lostReply is the real REST client of the rig's fake Asterisk, except that the reply to one
// request is lost: Asterisk did the work (the channel exists, with the id the dialer chose),
// but the dialer sees an error, as with asterisk.request_timeout firing while Asterisk is
// slow, or a connection reset after the request went out.
type lostReply struct {
	REST
	originate, create bool
}

var errReplyLost = errors.New("reading the reply: context deadline exceeded (Client.Timeout exceeded while awaiting headers)")

func (l lostReply) Originate(ctx context.Context, req ari.OriginateRequest) (ari.Channel, error) {
	ch, err := l.REST.Originate(ctx, req)
	if l.originate && err == nil {
		return ari.Channel{}, errReplyLost
	}
	return ch, err
}

func (l lostReply) CreateChannel(ctx context.Context, req ari.CreateRequest) (ari.Channel, error) {
	ch, err := l.REST.CreateChannel(ctx, req)
	if l.create && err == nil {
		return ari.Channel{}, errReplyLost
	}
	return ch, err
}

// Channel ids are the dialer's own, so a leg whose request failed in an unknown way can always
// be hung up (a 404 is ignored): a callback that gives up must never leave a leg behind — an
// agent's phone ringing into a call nobody runs, or a customer leg parked in Stasis for ever.
func TestCallbackLeavesNoLegBehindWhenTheReplyToItsRequestIsLost(t *testing.T) {
	cases := []struct {
		name string
		rest func(REST) REST
		leg  func(cb *callback) string
	}{
		{"originate of the agent leg", func(c REST) REST { return lostReply{REST: c, originate: true} },
			func(cb *callback) string { return cb.agentCh }},
		{"create of the customer leg", func(c REST) REST { return lostReply{REST: c, create: true} },
			func(cb *callback) string { return cb.custCh }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, monday10, nil, func(s *aritest.Server) {
				s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
				s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
				s.SetEndpoint(customerPhone(customer1), talks())
			})
			cb := directCallback(t, r, tc.rest(r.conn.Client()))
			v := cb.run(context.Background())
			leg := tc.leg(cb)
			for _, ch := range r.pbx.Channels() {
				if ch.ID == leg {
					t.Errorf("callback ended (%s) but left leg %s in state %s at Asterisk", v.detail, leg, ch.State)
				}
			}
		})
	}
}

// directCallback is a callback for anna on an unstored promise, with rest as its Asterisk.
func directCallback(t *testing.T, r *rig, rest REST) *callback {
	t.Helper()
	var anna AgentView
	r.waitFor("anna to be known", func() bool {
		for _, a := range r.pool.Agents() {
			if a.ID == "anna" && a.Asterisk != "" {
				anna = a
				return true
			}
		}
		return false
	})
	q, _ := r.disp.policy.Queue("support")
	job := queue.Job{ID: "01LOSTREPLY0000000000000000", Queue: "support", Number: customer1,
		Reasons: []queue.Reason{"voicemail"}, Target: "1003", Deadline: r.clk.Now().Add(2 * time.Hour),
		State: queue.StateDialing, Lease: queue.Lease{Token: 1}}
	pbx := PBX{ID: r.conn.AsteriskID(), Name: "pbx", REST: rest, MonitorApp: "callbackd-monitor", ControlApp: "callbackd"}
	return &callback{env: r.disp.env, pbx: pbx, pbxUp: true, agent: anna, job: job, q: q, in: newInbox(), log: zap.NewNop()}
}

// failingBridge refuses to put the customer leg in the bridge, as an Asterisk in trouble would.
type failingBridge struct{ REST }

func (f failingBridge) AddChannel(ctx context.Context, bridge, channel string) error {
	if strings.HasSuffix(channel, "-customer") {
		return errors.New("bridge refused the channel")
	}
	return f.REST.AddChannel(ctx, bridge, channel)
}

// A customer leg that cannot be bridged is never dialled: the promise goes back without using
// an attempt (the customer's phone never rang) and the leg is hung up.
func TestCustomerLegThatCannotBeBridgedIsNeverDialledNorCharged(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	cb := directCallback(t, r, failingBridge{r.conn.Client()})
	v := cb.run(context.Background())
	if v.kind != release || v.custResult != "" || !v.cool {
		t.Errorf("verdict %+v; want the promise released with no customer result and the agent held back", v)
	}
	if dials := r.requested("POST /ari/channels/" + cb.custCh + "/dial"); len(dials) != 0 {
		t.Errorf("the unbridged customer leg was dialled: %q", dials)
	}
	for _, ch := range r.pbx.Channels() {
		if ch.ID == cb.custCh {
			t.Errorf("the unbridged customer leg is still at Asterisk in state %s", ch.State)
		}
	}
}
