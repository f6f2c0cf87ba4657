package dialer

// Crash safety of a callback (issue 11): what a daemon that dies mid-call leaves in Redis must
// let the next one settle the promise as the call deserved.

import (
	"context"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
	"github.com/callbackd/callbackd/queue"
)

// channelListed reports whether the fake Asterisk lists channel id.
func (r *rig) channelListed(id string) bool {
	for _, ch := range r.pbx.Channels() {
		if ch.ID == id {
			return true
		}
	}
	return false
}

// The claim records that the customer is about to be rung before their leg exists, and not
// while only the agent rings: a daemon killed at any instant leaves a lease whose expiry costs
// an attempt exactly when the customer's phone can have rung.
func TestTheClaimRecordsTheCustomerDialBeforeTheCustomerLegExists(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		agent := aritest.Answers(10 * time.Second)
		s.SetEndpoint("PJSIP/1002", agent)
		s.SetEndpoint("PJSIP/1003", agent)
		s.SetEndpoint(customerPhone(customer1), aritest.Rings())
	})
	r.drainOnCleanup()
	job := r.enqueue(customer1, "voicemail", "1002", 2*time.Hour)
	var claimed queue.Job
	r.waitFor("the agent to ring", func() bool {
		j, err := r.store.Get(context.Background(), job.Ref())
		claimed = j
		return err == nil && j.State == queue.StateDialing && r.channelListed(agentLeg(j))
	})
	if !claimed.DialledAt.IsZero() {
		t.Errorf("the agent's phone rings and the claim already reads the customer dialled at %v", claimed.DialledAt)
	}
	_, cust, _ := ari.CallbackIDs(claimed.ID, claimed.Lease.Token)
	r.waitFor("the customer leg to exist", func() bool { return r.channelListed(cust) })
	got, err := r.store.Get(context.Background(), job.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if got.DialledAt.IsZero() || got.Lease.Token != claimed.Lease.Token {
		t.Errorf("customer leg %s exists and the claim (token %d, now %d) reads DialledAt %v: a crash now would cost no attempt",
			cust, claimed.Lease.Token, got.Lease.Token, got.DialledAt)
	}
}

func agentLeg(j queue.Job) string {
	a, _, _ := ari.CallbackIDs(j.ID, j.Lease.Token)
	return a
}
