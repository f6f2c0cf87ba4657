package dialer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/aritest"
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
				looks = looks || w.looks()
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

// The chaos suite's case: another daemon's callback rings the customer, who answers, talks
// and hangs up while that daemon is gone (killed, or deaf while a twin held its applications),
// and the only daemon that heard the answer is killed too before the claim's lease runs out.
// What the witness heard is in Redis, so the daemon after it finishes the promise kept by the
// time the answer was heard, with no attempt used, and nobody rings the customer again after
// they talked to an agent.
func TestAnAnswerHeardByADaemonKilledBeforeTheLeaseRanOutStillKeepsThePromise(t *testing.T) {
	r := newRig(t, monday10, nil, func(s *aritest.Server) {
		s.SetEndpoint("PJSIP/1002", aritest.Answers(2*time.Second))
		s.SetEndpoint("PJSIP/1003", aritest.Answers(2*time.Second))
		s.SetEndpoint(customerPhone(customer1), talks())
	})
	r.drainOnCleanup()
	ctx := context.Background()
	// The other daemon's claim: it rang the customer, whose leg sits in its control app.
	job, other := r.claimedElsewhere("other-daemon")
	if _, err := r.store.MarkDialled(ctx, other.Ref(), other.Lease.Token); err != nil {
		t.Fatal(err)
	}
	_, cust, _ := ari.CallbackIDs(other.ID, other.Lease.Token)
	answered := r.clk.Now()
	r.pbx.CreateChannel(aritest.ChannelSpec{ID: cust, Endpoint: customerPhone(customer1), State: "Up"})
	r.waitFor("the witness to store the answer it heard", func() bool {
		got, err := r.store.Get(ctx, other.Ref())
		return err == nil && got.State == queue.StateDialing && r.janitorStored(other.ID)
	})
	r.pbx.Hangup(cust, 16) // the conversation is over before anyone looks again
	r.crash()
	r.boot("test-restarted")
	r.resumeAgents()

	var got queue.Job
	var err error
	r.waitFor("the promise to be finished", func() bool {
		got, err = r.store.Get(ctx, job.Ref())
		return err == nil && !got.State.Open()
	})
	if got.State != queue.StateKept || got.Attempts != 0 {
		t.Errorf("promise %s with %d attempts; want kept with none used\n%s", got.State, got.Attempts, r.story())
	}
	if got.ConnectedAt.Before(answered) || got.ConnectedAt.After(answered.Add(time.Minute)) {
		t.Errorf("connected at %v; want about when the answer was heard (%v)", got.ConnectedAt, answered)
	}
	for _, c := range r.pbx.ChannelHistory() {
		if c.ID != cust && c.Endpoint == customerPhone(customer1) {
			t.Errorf("the customer was rung again (%s) after talking to an agent", c.ID)
		}
	}
}

// janitorStored reports whether the current janitor stored what it heard of promise id.
func (r *rig) janitorStored(id string) bool {
	r.janitor.mu.Lock()
	defer r.janitor.mu.Unlock()
	for _, tk := range r.janitor.talked {
		if strings.EqualFold(tk.id.Promise, id) && tk.stored {
			return true
		}
	}
	return false
}

// countingPromises counts the janitor's reads and heard writes, and fails the first failReads
// reads as an unreachable Redis would.
type countingPromises struct {
	JanitorPromises
	mu                      sync.Mutex
	reads, heard, failReads int
}

func (c *countingPromises) Get(ctx context.Context, ref queue.Ref) (queue.Job, error) {
	c.mu.Lock()
	c.reads++
	fail := c.reads <= c.failReads
	c.mu.Unlock()
	if fail {
		return queue.Job{}, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	return c.JanitorPromises.Get(ctx, ref)
}

func (c *countingPromises) MarkHeard(ctx context.Context, ref queue.Ref, token int64, at time.Time) (queue.Job, error) {
	c.mu.Lock()
	c.heard++
	c.mu.Unlock()
	return c.JanitorPromises.MarkHeard(ctx, ref, token, at)
}

func (c *countingPromises) counts() (reads, heard int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads, c.heard
}

// What another daemon's customer leg costs this daemon's janitor in Redis while the customer
// has not pressed the queue's confirm digit: one read of the promise when the answer is heard
// (again after a read that failed), and then nothing until a key is pressed, however many
// other events the leg has (its greeting's playbacks, its variables). The press is stored once.
func TestAHeardAnswerIsReadAgainOnlyWhenAKeyIsPressed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failReads int
	}{
		{"Redis answers", 0},
		{"the first read fails", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redistest.Start(t, redistest.Options{}).Client()
			clk := clock.NewFake(monday10)
			store, err := queue.New(rdb, queue.Options{Clock: clk, Queues: []string{"support"}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, _, err := store.Enqueue(ctx, queue.Request{Queue: "support", Number: customer1, Reason: queue.ReasonVoicemail,
				Deadline: monday10.Add(time.Hour), MaxAttempts: 3}); err != nil {
				t.Fatal(err)
			}
			claim, err := store.Claim(ctx, "support", queue.ClaimOptions{Worker: "other-daemon/bob", Lease: time.Minute})
			if err != nil || claim == nil {
				t.Fatalf("claim: %+v, %v", claim, err)
			}
			promises := &countingPromises{JanitorPromises: store, failReads: tc.failReads}
			j, err := NewJanitor(JanitorOptions{Promises: promises, Queues: []string{"support"}, Control: NewControl(),
				PBX: func(string) (JanitorREST, bool) { return nil, false }, Clock: clk,
				ControlApps: []string{"callbackd-a"}, ConfirmDigit: func(string) string { return "1" }})
			if err != nil {
				t.Fatal(err)
			}
			_, cust, _ := ari.CallbackIDs(claim.ID, claim.Lease.Token)
			leg := &ari.Channel{ID: cust, State: "Up", Dialplan: ari.Dialplan{AppName: "Stasis", AppData: "callbackd-b,customer,x"}}
			// hear hands the janitor one event of the leg and then does the stores it queued, as
			// Run would (the looks it queued need a PBX, and this janitor has none).
			hear := func(typ ari.EventType, digit string) {
				j.Monitor().HandleEvent(&ari.Event{Type: typ, AsteriskID: "pbx", Channel: leg, Digit: digit})
				j.mu.Lock()
				work := j.work
				j.work, j.looking = nil, map[string]bool{}
				j.mu.Unlock()
				for _, c := range work {
					if c.heard != "" {
						j.storeHeard(ctx, c.heard)
					}
				}
			}
			type step struct {
				what         string
				typ          ari.EventType
				digit        string
				reads, heard int // the janitor's reads and heard writes so far
			}
			steps := []step{{"the answer heard", ari.EventChannelStateChange, "", 1, 0}}
			if tc.failReads > 0 {
				steps = append(steps, step{"the next event after the failed read", ari.EventChannelVarset, "", 2, 0})
			}
			base := tc.failReads
			for i := range 5 {
				steps = append(steps, step{fmt.Sprintf("event %d without a key press", i+1), ari.EventChannelVarset, "", 1 + base, 0})
			}
			steps = append(steps, step{"the confirm digit", ari.EventChannelDtmfReceived, "1", 2 + base, 1})
			for _, st := range steps {
				hear(st.typ, st.digit)
				if reads, heard := promises.counts(); reads != st.reads || heard != st.heard {
					t.Fatalf("after %s: %d reads and %d heard writes; want %d and %d", st.what, reads, heard, st.reads, st.heard)
				}
			}
			if got := rdb.HGet(ctx, "callbackd:{support}:job:"+claim.ID, "heard_token").Val(); got != strconv.FormatInt(claim.Lease.Token, 10) {
				t.Errorf("heard_token %q; want the claim's token %d", got, claim.Lease.Token)
			}
		})
	}
}
