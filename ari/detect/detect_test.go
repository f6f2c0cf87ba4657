package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/trace"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/queue"
)

const tracesDir = "../testdata/traces"

type expectedRequest struct {
	Number string `json:"number"`
	Reason string `json:"reason"`
	Target string `json:"target"`
}

func loadExpected(t *testing.T) map[string][]expectedRequest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(tracesDir, "expected.json"))
	if err != nil {
		t.Fatalf("reading expected outcomes: %v", err)
	}
	var exp map[string][]expectedRequest
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatalf("parsing expected.json: %v", err)
	}
	return exp
}

func expectedSummary(reqs []expectedRequest) []string {
	out := []string{}
	for _, r := range reqs {
		out = append(out, fmt.Sprintf("%s %s %s", r.Reason, r.Target, r.Number))
	}
	sort.Strings(out)
	return out
}

// stripLinkedID removes every channelvars object, as if ari.conf did not export the linkedid.
func stripLinkedID(ev *ari.Event) {
	for _, c := range []*ari.Channel{ev.Channel, ev.Caller, ev.Peer, ev.Forwarded, ev.ReplaceChannel,
		ev.Transferee, ev.TransfererFirstLeg, ev.TransfererSecondLeg, ev.TransferTarget,
		ev.DestinationLinkFirstLeg, ev.DestinationLinkSecondLeg, ev.DestinationThreewayChannel} {
		if c != nil {
			c.ChannelVars = nil
		}
	}
}

// replayRecording runs one recording through a detector with the default options only: no
// control application configured, so our own callback legs must be recognised from what
// Asterisk shows of them.
func replayRecording(t *testing.T, path string, mutate func(*ari.Event)) *recorder {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	apps, err := trace.ScanApps(bytes.NewReader(data))
	if err != nil || len(apps.Monitor) != 1 {
		t.Fatalf("%s: want one subscribeAll app, got %+v (err %v)", path, apps, err)
	}
	clk := clock.NewFake(time.Time{})
	det, rec := newTestDetector(t, Options{Clock: clk})
	st, err := trace.Read(bytes.NewReader(data), apps.Monitor[0], func(ev *ari.Event) {
		if tm, err := ev.Time(); err == nil {
			clk.Set(tm)
		}
		if mutate != nil {
			mutate(ev)
		}
		det.HandleEvent(ev)
	})
	if err != nil || st.Malformed != 0 || st.Events == 0 {
		t.Fatalf("%s: read %+v, err %v", path, st, err)
	}
	if s := det.Stats(); s.Malformed != 0 || s.Unknown != 0 {
		t.Errorf("%s: recorded events counted as bad: %+v", path, s)
	}
	if n := det.Tracked(); n != 0 {
		t.Errorf("%s: %d calls still tracked after every channel was destroyed", path, n)
	}
	return rec
}

// TestRecordings: every public recording yields exactly its expected requests, with the
// linkedid exported as recorded and with the fallback grouping when it is not.
func TestRecordings(t *testing.T) {
	exp := loadExpected(t)
	files, err := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings in %s (%v)", tracesDir, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		want, ok := exp[name]
		if !ok {
			t.Errorf("%s has no entry in expected.json", name)
			continue
		}
		for _, variant := range []struct {
			name   string
			mutate func(*ari.Event)
		}{
			{"with linkedid", nil},
			{"without linkedid", stripLinkedID},
		} {
			t.Run(name+"/"+variant.name, func(t *testing.T) {
				rec := replayRecording(t, f, variant.mutate)
				if got, w := rec.summary(), expectedSummary(want); !slices.Equal(got, w) {
					t.Errorf("requests:\n got %s\nwant %s", join(got), join(w))
				}
				// expected.json lists requests only; a call never both reaches a target and
				// asks a callback for it.
				for _, r := range rec.reached {
					for _, q := range rec.requests {
						if q.LinkedID == r.LinkedID && q.Target == r.Target {
							t.Errorf("call %s reached %s and asks a callback for it (%s)", r.LinkedID, r.Target, q.Reason)
						}
					}
				}
			})
		}
	}
	for name := range exp {
		if _, err := os.Stat(filepath.Join(tracesDir, name)); err != nil {
			t.Errorf("expected.json names %s, which is not in the test data: %v", name, err)
		}
	}
}

// TestRequestFields: a request carries the customer's identity and the time the call ended.
func TestRequestFields(t *testing.T) {
	rec := replayRecording(t, filepath.Join(tracesDir, "02-dial-noanswer-voicemail.jsonl"), nil)
	if len(rec.requests) != 1 {
		t.Fatalf("want one request, got %+v", rec.requests)
	}
	r := rec.requests[0]
	want := Request{AsteriskID: "02:fc:00:00:00:01", LinkedID: "1795351341.53", Number: "+31201234502",
		Name: "J. de Vries", Reason: queue.ReasonVoicemail, Target: "1003", Channel: "1795351341.53",
		At:         time.Date(2026, 11, 22, 12, 42, 47, 463e6, time.UTC),
		DialString: "PJSIP/1003", DID: "+31205550102", Context: "from-trunk"}
	if r != want {
		t.Errorf("request\n got %+v\nwant %+v", r, want)
	}
}

// TestRequestSaysWhatTheCustomerAskedFor: a request carries what detector.routes match on —
// the Asterisk queue, the ring group's dial string, the DID and the inbound context. The
// customer calls the main number and is sent, in the dialplan, to exten running app(data);
// nobody answers.
func TestRequestSaysWhatTheCustomerAskedFor(t *testing.T) {
	tests := []struct {
		exten, app, data string
		want             string // Target | AsteriskQueue | DialString | DID | Context
	}{
		{"+31205550100", "Queue", "sales,t,,,60", "sales|sales||+31205550100|from-trunk"},
		{"600", "Dial", "PJSIP/1001&PJSIP/1002,20", "600||PJSIP/1001&PJSIP/1002|+31205550100|from-trunk"},
		{"1003", "Dial", "PJSIP/1003,20", "1003||PJSIP/1003|+31205550100|from-trunk"},
	}
	for _, tt := range tests {
		d, rec := newTestDetector(t, Options{})
		s := newSim(t)
		c := s.customer("c1", "+31201234501")
		s.created(c)
		s.goTo(c, "internal", tt.exten)
		s.dialplan(c, tt.app, tt.data)
		s.varset(c, "DIALSTATUS", "NOANSWER")
		s.destroyed(c)
		s.play(d)
		var got []string
		for _, r := range rec.requests {
			got = append(got, strings.Join([]string{r.Target, r.AsteriskQueue, r.DialString, r.DID, r.Context}, "|"))
		}
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s(%s) at %s: requests %q, want [%q]", tt.app, tt.data, tt.exten, got, tt.want)
		}
	}
}

func TestScenarios(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		build func(s *sim)
		want  []string // "reason target number", sorted
	}{
		{
			name: "direct dial unanswered: unanswered_transfer to the extension",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234501")
				p := s.phone("p1", "1003", "c1")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1003,10")
				s.created(p)
				s.dial(c, p, "")
				s.dial(c, p, "RINGING")
				s.dial(c, p, "NOANSWER")
				s.destroyed(p, c)
			},
			want: []string{"unanswered_transfer 1003 +31201234501"},
		},
		{
			name: "no linkedid channelvar: Dial peer and Local pair grouped by the fallback",
			build: func(s *sim) {
				s.noLinkedID = true
				c := s.customer("c1", "+31201234501")
				l1 := s.channel("l1", "Local/600@groups-00000001;1", "+31201234501", "groups", "600", "")
				l2 := s.channel("l2", "Local/600@groups-00000001;2", "+31201234501", "groups", "600", "")
				p1 := s.phone("p1", "1001", "")
				p2 := s.phone("p2", "1002", "")
				s.created(c)
				s.dialplan(c, "Dial", "Local/600@groups,30")
				s.created(l1)
				s.created(l2)
				s.dial(c, l1, "")
				s.dialplan(l2, "Dial", "PJSIP/1001&PJSIP/1002,20")
				s.created(p1)
				s.created(p2)
				s.dial(l2, p1, "")
				s.dial(l2, p2, "")
				s.dial(l2, p1, "NOANSWER")
				s.dial(l2, p2, "NOANSWER")
				s.destroyed(p1, p2, l2)
				s.dial(c, l1, "NOANSWER")
				s.destroyed(l1, c)
			},
			want: []string{"unanswered_transfer 600 +31201234501"},
		},
		{
			name: "no linkedid channelvar: answered through a Local pair is nothing",
			build: func(s *sim) {
				s.noLinkedID = true
				c := s.customer("c1", "+31201234501")
				l1 := s.channel("l1", "Local/1003@internal-00000001;1", "+31201234501", "internal", "1003", "")
				l2 := s.channel("l2", "Local/1003@internal-00000001;2", "+31201234501", "internal", "1003", "")
				p := s.phone("p1", "1003", "")
				s.created(c)
				s.dialplan(c, "Dial", "Local/1003@internal")
				s.created(l1)
				s.created(l2)
				s.dial(c, l1, "")
				s.dialplan(l2, "Dial", "PJSIP/1003")
				s.created(p)
				s.dial(l2, p, "ANSWER")
				s.dial(c, l1, "ANSWER")
				s.destroyed(p, l2, l1, c)
			},
			want: []string{},
		},
		{
			name: "attended transfer nobody answered: unanswered_transfer to the transfer target",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234504")
				op := s.phone("op", "1001", "c1")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1001,20,t")
				s.created(op)
				s.dial(c, op, "ANSWER")
				s.bridge("b1", c, op)
				// The operator's consultation call is a call of its own.
				op2 := s.channel("op2", "PJSIP/1001-op2", "1001", "from-sip", "1003", "")
				tgt := s.phone("t1", "1003", "op2")
				s.created(op2)
				s.dialplan(op2, "Dial", "PJSIP/1003")
				s.created(tgt)
				s.dial(op2, tgt, "RINGING")
				s.attended(op, op2, c, tgt, "Success")
				s.destroyed(op, op2)
				s.dial(op2, tgt, "NOANSWER")
				s.destroyed(tgt, c)
			},
			want: []string{"unanswered_transfer 1003 +31201234504"},
		},
		{
			name: "attended transfer answered: nothing",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234504")
				op := s.phone("op", "1001", "c1")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1001,20,t")
				s.created(op)
				s.dial(c, op, "ANSWER")
				s.bridge("b1", c, op)
				op2 := s.channel("op2", "PJSIP/1001-op2", "1001", "from-sip", "1003", "")
				tgt := s.phone("t1", "1003", "op2")
				s.created(op2)
				s.dialplan(op2, "Dial", "PJSIP/1003")
				s.created(tgt)
				s.dial(op2, tgt, "ANSWER")
				tgt.State = "Up"
				s.attended(op, op2, c, tgt, "Success")
				s.left(op, "b1")
				tgt.ChannelVars[ari.LinkedIDVar] = "c1"
				s.enter(tgt, "b1", c, tgt)
				s.destroyed(op, op2, tgt, c)
			},
			want: []string{},
		},
		{
			name:  "DTMF attended transfer completed while the target rings, nobody answers",
			build: func(s *sim) { s.dtmfAttendedTransfer(true) },
			want:  []string{"unanswered_transfer 1003 +31201234504"},
		},
		{
			// The operator gives up (atxferabort) and talks to the customer again: the transfer
			// bounced back, and the customer still did not reach the one they asked for.
			name:  "DTMF consultation abandoned by the operator while the target rings: unanswered_transfer to the consulted extension",
			build: func(s *sim) { s.dtmfAttendedTransfer(false) },
			want:  []string{"unanswered_transfer 1003 +31201234504"},
		},
		{
			name: "queue nobody answers: one request for the queue",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234501")
				a1 := s.channel("a1", "Local/agent7@agents-00000003;1", "+31201234501", "agents", "agent7", "c1")
				a2 := s.phone("a2", "1002", "c1")
				s.created(c)
				s.dialplan(c, "Queue", "support,t,,,60")
				s.created(a1)
				s.dial(c, a1, "RINGING")
				s.dial(c, a1, "NOANSWER")
				s.created(a2)
				s.dial(c, a2, "NOANSWER")
				s.destroyed(a1, a2, c)
			},
			want: []string{"unanswered_transfer support +31201234501"},
		},
		{
			name: "queue answered by a member: nothing",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234501")
				a1, a2 := s.phone("a1", "1001", "c1"), s.phone("a2", "1002", "c1")
				s.created(c)
				s.dialplan(c, "Queue", "support")
				s.created(a1)
				s.dial(c, a1, "NOANSWER")
				s.created(a2)
				s.dial(c, a2, "ANSWER")
				s.bridge("b1", c, a2)
				s.destroyed(a1, a2, c)
			},
			want: []string{},
		},
		{
			name: "extension forwards to a mobile that answers: nothing",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234501")
				p := s.phone("p1", "1003", "c1")
				mob := s.channel("m1", "PJSIP/trunk-m1", "+31612345678", "from-sip", "s", "c1")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1003,20")
				s.created(p)
				s.dial(c, p, "RINGING")
				s.created(mob)
				s.add(&ari.Event{Type: ari.EventDial, Caller: s.snap(c), Peer: s.snap(p), Forwarded: s.snap(mob),
					Forward: "PJSIP/+31612345678@trunk", DialStatus: "CANCEL"})
				s.dial(c, mob, "ANSWER")
				s.bridge("b1", c, mob)
				s.destroyed(p, mob, c)
			},
			want: []string{},
		},
		{
			name: "ring group where one answers: nothing",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234501")
				p1, p2 := s.phone("p1", "1001", "c1"), s.phone("p2", "1002", "c1")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1001&PJSIP/1002,20")
				s.created(p1)
				s.created(p2)
				s.dial(c, p1, "RINGING")
				s.dial(c, p2, "RINGING")
				s.dial(c, p2, "ANSWER")
				s.dial(c, p1, "CANCEL")
				s.destroyed(p1)
				s.bridge("b1", c, p2)
				s.destroyed(p2, c)
			},
			want: []string{},
		},
		{
			name: "ring group nobody answers: one request for the group's extension",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234501")
				s.created(c)
				s.blindTransferFromOperator(c, "600")
				p1, p2 := s.phone("p1", "1001", "c1"), s.phone("p2", "1002", "c1")
				s.dialplan(c, "Dial", "PJSIP/1001&PJSIP/1002,20")
				s.created(p1)
				s.created(p2)
				s.dial(c, p1, "NOANSWER")
				s.dial(c, p2, "NOANSWER")
				s.destroyed(p1, p2, c)
			},
			want: []string{"unanswered_transfer 600 +31201234501"},
		},
		{
			name: "ring group on a DID nobody answers: one request for the first member",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234501")
				p1, p2 := s.phone("p1", "1001", "c1"), s.phone("p2", "1002", "c1")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1001&PJSIP/1002,20")
				s.created(p1)
				s.created(p2)
				s.dial(c, p2, "NOANSWER")
				s.dial(c, p1, "NOANSWER")
				s.destroyed(p1, p2, c)
			},
			want: []string{"unanswered_transfer 1001 +31201234501"},
		},
		{
			name: "voicemail with hang-up before the message: nothing",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234503")
				s.created(c)
				s.dialplan(c, "VoiceMail", "1003@default,u")
				s.state(c, "Up")
				s.varset(c, "VMSTATUS", "FAILED")
				s.destroyed(c)
			},
			want: []string{},
		},
		{
			name: "voicemail message after the caller's channel is gone (Local ;2 runs VoiceMail)",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234502")
				l1 := s.channel("l1", "Local/vm1003@apps-00000002;1", "+31201234502", "apps", "vm1003", "c1")
				l2 := s.channel("l2", "Local/vm1003@apps-00000002;2", "+31201234502", "apps", "vm1003", "c1")
				s.created(c)
				s.dialplan(c, "Dial", "Local/vm1003@apps")
				s.created(l1)
				s.created(l2)
				s.dial(c, l1, "ANSWER")
				s.dialplan(l2, "VoiceMail", "1003@default,u")
				s.destroyed(c, l1)
				s.varset(l2, "VM_MESSAGEFILE", "/var/spool/asterisk/voicemail/default/1003/INBOX/msg0001")
				s.varset(l2, "VMSTATUS", "SUCCESS")
				s.destroyed(l2)
			},
			want: []string{"voicemail 1003 +31201234502"},
		},
		{
			name: "voicemail wins over the unanswered dial to the same target",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234502")
				p := s.phone("p1", "1003", "c1")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1003,10")
				s.created(p)
				s.dial(c, p, "NOANSWER")
				s.destroyed(p)
				s.leaveVoicemail(c, "1003")
				s.destroyed(c)
			},
			want: []string{"voicemail 1003 +31201234502"},
		},
		{
			name: "masquerade: the synthetic NOANSWER is not the outcome",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234501")
				p := s.phone("p1", "1003", "c1")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1003,20")
				s.created(p)
				s.dial(c, p, "")
				s.dial(c, p, "RINGING")
				s.dial(c, p, "NOANSWER") // for the old identity
				s.dial(c, p, "")
				s.dial(c, p, "ANSWER")
				s.bridge("b1", c, p)
				s.destroyed(p, c)
			},
			want: []string{},
		},
		{
			name: "unregistered extension: CHANUNAVAIL without any Dial event",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234505")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1004,10")
				s.varset(c, "DIALSTATUS", "CHANUNAVAIL")
				s.dialplan(c, "Hangup", "")
				s.destroyed(c)
			},
			want: []string{"unanswered_transfer 1004 +31201234505"},
		},
		{
			name: "internal call between extensions: nothing",
			build: func(s *sim) {
				a := s.channel("a1", "PJSIP/1002-a1", "1002", "from-sip", "1003", "")
				p := s.phone("p1", "1003", "a1")
				s.created(a)
				s.dialplan(a, "Dial", "PJSIP/1003,10")
				s.created(p)
				s.dial(a, p, "NOANSWER")
				s.destroyed(p)
				s.leaveVoicemail(a, "1003")
				s.destroyed(a)
			},
			want: []string{},
		},
		{
			name: "callback legs of the control app: nothing",
			opts: Options{ControlApps: []string{"callbackd"}},
			build: func(s *sim) {
				agent := s.channel("job-1-agent", "PJSIP/1003-0001", "1003", "from-sip", "s", "")
				cust := s.channel("job-1-customer", "PJSIP/trunk-0002", "+31201234599", "from-sip", "s", "")
				s.created(agent)
				agent.Caller.Number = "+31201234599"
				s.add(&ari.Event{Type: ari.EventChannelCallerID, Channel: s.snap(agent)})
				s.dial(nil, agent, "RINGING")
				s.dial(nil, agent, "ANSWER")
				s.created(cust)
				s.dialplan(cust, "Stasis", "callbackd,customer,job-1")
				s.dial(nil, cust, "RINGING")
				// The leg fails: ARI-dialled legs get no final Dial event.
				s.destroyed(cust, agent)
			},
			want: []string{},
		},
		{
			name: "callback legs seen only through the control app's own events: nothing",
			opts: Options{ControlApps: []string{"callbackd"}},
			build: func(s *sim) {
				cust := s.channel("cust", "PJSIP/trunk-0003", "+31201234598", "from-trunk", "+31205550100", "")
				s.app = "callbackd"
				s.created(cust)
				s.app = "monitor"
				s.dialplan(cust, "Dial", "PJSIP/1003,10")
				s.varset(cust, "DIALSTATUS", "CHANUNAVAIL")
				s.destroyed(cust)
			},
			want: []string{},
		},
		{
			name: "leg originated by ARI with a customer's caller id, later sent into the dialplan: nothing",
			build: func(s *sim) {
				agent := s.channel("job-2-agent", "PJSIP/1003-0004", "1003", "from-sip", "s", "")
				s.created(agent)
				s.dialplan(agent, "AppDial2", "(Outgoing Line)")
				agent.Caller.Number = "+31201234597"
				s.add(&ari.Event{Type: ari.EventChannelCallerID, Channel: s.snap(agent)})
				s.goTo(agent, "agents", "s")
				s.dialplan(agent, "Dial", "PJSIP/1004,10")
				s.destroyed(agent)
			},
			want: []string{},
		},
		{
			name: "leg created and dialled by any ARI application, later sent into the dialplan: nothing",
			build: func(s *sim) {
				leg := s.channel("leg", "PJSIP/trunk-0005", "+31201234596", "from-sip", "s", "")
				s.created(leg)
				s.dial(nil, leg, "ANSWER")
				s.dialplan(leg, "Dial", "PJSIP/1004,10")
				s.destroyed(leg)
			},
			want: []string{},
		},
		{
			name: "customer call handed to the control app's offer: the offer flow owns it",
			opts: Options{ControlApps: []string{"callbackd"}},
			build: func(s *sim) {
				c := s.customer("c1", "+31201234501")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1004,10")
				s.varset(c, "DIALSTATUS", "CHANUNAVAIL")
				s.dialplan(c, "Stasis", "callbackd,offer,sales")
				s.destroyed(c)
			},
			want: []string{},
		},
		{
			name: "two calls from the same number to the same target: one request per call",
			build: func(s *sim) {
				for _, id := range []string{"c1", "c2"} {
					c := s.customer(id, "+31201234501")
					s.created(c)
					s.dialplan(c, "Dial", "PJSIP/1004,10")
					s.varset(c, "DIALSTATUS", "CHANUNAVAIL")
					s.dialplan(c, "Dial", "PJSIP/1004,10") // a retry in one call is one request
					s.destroyed(c)
				}
			},
			want: []string{"unanswered_transfer 1004 +31201234501", "unanswered_transfer 1004 +31201234501"},
		},
		{
			name: "blind transfer unanswered, operator reached: only the transfer target",
			build: func(s *sim) {
				c := s.customer("c1", "+31201234504")
				s.created(c)
				s.blindTransferFromOperator(c, "1003")
				p := s.phone("p2", "1003", "c1")
				s.dialplan(c, "Dial", "PJSIP/1003,10")
				s.created(p)
				s.dial(c, p, "NOANSWER")
				s.destroyed(p, c)
			},
			want: []string{"unanswered_transfer 1003 +31201234504"},
		},
		{
			name: "national caller number from a configured inbound context becomes E.164",
			opts: Options{InboundContexts: []string{"from-pstn"}},
			build: func(s *sim) {
				c := s.channel("c1", "DAHDI/1-1", "0201234507", "from-pstn", "s", "")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1004,10")
				s.destroyed(c)
			},
			want: []string{"unanswered_transfer 1004 +31201234507"},
		},
		{
			name:  "a national number without its trunk 0 is read in the default country, not as +20",
			opts:  Options{InboundContexts: []string{"from-pstn"}},
			build: inboundDialFrom("201234507"),
			want:  []string{"unanswered_transfer 1004 +31201234507"},
		},
		{
			name:  "an Italian national number keeps its 0 in Italy's plan",
			opts:  Options{InboundContexts: []string{"from-pstn"}, DefaultCountry: "IT"},
			build: inboundDialFrom("0612345678"),
			want:  []string{"unanswered_transfer 1004 +390612345678"},
		},
		{
			name:  "a US national number gets +1 (the old country code option names the region)",
			opts:  Options{InboundContexts: []string{"from-pstn"}, DefaultCountryCode: "1"},
			build: inboundDialFrom("2125551234"),
			want:  []string{"unanswered_transfer 1004 +12125551234"},
		},
		{
			name:  "a caller number that is no valid number is never promised a callback",
			opts:  Options{InboundContexts: []string{"from-pstn"}},
			build: inboundDialFrom("+447700900123"),
			want:  []string{},
		},
		{
			name: "anonymous caller: no number to call back, nothing",
			opts: Options{InboundContexts: []string{"from-trunk"}},
			build: func(s *sim) {
				c := s.customer("c1", "anonymous")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1004,10")
				s.destroyed(c)
			},
			want: []string{},
		},
		{
			name: "unknown event types are skipped",
			build: func(s *sim) {
				s.raw(s.t, `{"type":"ChannelFutureThing","timestamp":"2026-11-22T12:00:00.000+0000","channel":{"id":"x"}}`)
				c := s.customer("c1", "+31201234501")
				s.created(c)
				s.dialplan(c, "Dial", "PJSIP/1004,10")
				s.raw(s.t, `{"type":"SomethingNew","asterisk_id":"02:fc:00:00:00:01"}`)
				s.destroyed(c)
			},
			want: []string{"unanswered_transfer 1004 +31201234501"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			det, rec := newTestDetector(t, tt.opts)
			s := newSim(t)
			tt.build(s)
			s.play(det)
			if got := rec.summary(); !slices.Equal(got, tt.want) {
				t.Errorf("requests:\n got %s\nwant %s", join(got), join(tt.want))
			}
			if n := det.Tracked(); n != 0 {
				t.Errorf("%d calls still tracked after every channel was destroyed", n)
			}
		})
	}
}

// blindTransferFromOperator: the customer reaches the operator 1001, who blind-transfers
// them to exten, with the event order of recording 04.
func (s *sim) blindTransferFromOperator(c *ari.Channel, exten string) {
	s.t.Helper()
	op := s.phone("op-"+c.ID, "1001", c.ChannelVars[ari.LinkedIDVar])
	s.dialplan(c, "Dial", "PJSIP/1001,20,t")
	s.created(op)
	s.dial(c, op, "ANSWER")
	s.bridge("b-"+c.ID, c, op)
	s.blind(op, c, exten, "cb-internal")
	s.goTo(c, "cb-internal", exten)
	c.Dialplan.Priority = 1
	s.add(&ari.Event{Type: ari.EventChannelDialplan, Channel: s.snap(c), DialplanApp: "Dial", DialplanAppData: "PJSIP/1001,20,t"})
	s.left(c, "b-"+c.ID)
	s.varset(c, "DIALSTATUS", "ANSWER") // late, from the operator's Dial: not the target's answer
	s.destroyed(op)
}

func TestUnknownAndMalformedEventsAreCounted(t *testing.T) {
	det, rec := newTestDetector(t, Options{})
	for _, js := range []string{
		`{"type":"SomethingNew"}`,
		`{"type":"Dial","dialstatus":"ANSWER"}`,
		`{"type":"ChannelDestroyed"}`,
		`{"type":"ChannelEnteredBridge","channel":{"id":"a"}}`,
		`{"type":"ChannelCreated","channel":{"id":""}}`,
	} {
		ev, err := ari.Decode([]byte(js))
		if err != nil {
			t.Fatalf("decode %s: %v", js, err)
		}
		det.HandleEvent(ev)
	}
	det.HandleEvent(nil)
	st := det.Stats()
	if st.Events != 6 || st.Unknown != 1 || st.Malformed != 5 {
		t.Errorf("stats %+v: want 6 events, 1 unknown, 5 malformed", st)
	}
	if len(rec.requests) != 0 {
		t.Errorf("bad events produced requests: %+v", rec.requests)
	}
}

func TestReachedWhenACustomerCallReachesATarget(t *testing.T) {
	det, rec := newTestDetector(t, Options{})
	s := newSim(t)
	c := s.customer("c1", "+31201234501")
	p := s.phone("p1", "1003", "c1")
	s.created(c)
	s.dialplan(c, "Dial", "PJSIP/1003,10")
	s.created(p)
	s.dial(c, p, "NOANSWER")
	s.destroyed(p, c)
	s.play(det)
	if got := rec.summary(); !slices.Equal(got, []string{"unanswered_transfer 1003 +31201234501"}) {
		t.Fatalf("first call: %s", join(got))
	}

	// Every customer who reaches 1003 is reported, once per call: whether a promise is owed is
	// the intake's question (queue.Asked), not the detector's. A call that did not reach 1003
	// reports nothing.
	other := s.customer("c2", "+31201234577")
	p2 := s.phone("p2", "1003", "c2")
	s.created(other)
	s.dialplan(other, "Dial", "PJSIP/1003")
	s.created(p2)
	s.dial(other, p2, "ANSWER")
	s.destroyed(p2, other)
	again := s.customer("c3", "0201234501") // same customer, national form
	p3 := s.phone("p3", "1003", "c3")
	s.created(again)
	s.dialplan(again, "Dial", "PJSIP/1003")
	s.created(p3)
	s.dial(again, p3, "ANSWER")
	s.bridge("b3", again, p3)
	s.destroyed(p3, again)
	s.play(det)

	if got := rec.reachedSummary(); !slices.Equal(got, []string{"reached 1003 +31201234577", "reached 1003 +31201234501"}) {
		t.Errorf("reached: got %s", join(got))
	}
	if r := rec.reached; len(r) == 2 && (r[1].LinkedID != "c3" || r[1].AsteriskID != s.asteriskID) {
		t.Errorf("reach names the wrong call: %+v", r[1])
	}
	if st := det.Stats(); st.Requests != 1 || st.Reaches != 2 || st.Calls != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestResync(t *testing.T) {
	t.Run("calls whose channels vanished are over", func(t *testing.T) {
		det, rec := newTestDetector(t, Options{})
		s := newSim(t)
		gone := s.customer("c1", "+31201234501")
		s.created(gone)
		s.dialplan(gone, "Dial", "PJSIP/1004,10")
		stays := s.customer("c2", "+31201234502")
		s.created(stays)
		s.dialplan(stays, "Dial", "PJSIP/1003,10")
		s.play(det)
		det.Resync(ari.Snapshot{AsteriskID: s.asteriskID, At: s.now, Channels: []ari.Channel{*stays}})
		if got := rec.summary(); !slices.Equal(got, []string{"unanswered_transfer 1004 +31201234501"}) {
			t.Errorf("after resync: %s", join(got))
		}
		if n := det.Tracked(); n != 1 {
			t.Errorf("want the live call still tracked, have %d calls", n)
		}
		if !rec.requests[0].At.Equal(s.now) {
			t.Errorf("request at %v, want the snapshot time %v", rec.requests[0].At, s.now)
		}
	})
	t.Run("after a restart every call of that server is over, others stay", func(t *testing.T) {
		det, rec := newTestDetector(t, Options{})
		s := newSim(t)
		c := s.customer("c1", "+31201234501")
		s.created(c)
		s.dialplan(c, "Dial", "PJSIP/1004,10")
		s.play(det)
		other := newSim(t)
		other.asteriskID = "other"
		oc := other.customer("c1", "+31201234509")
		other.created(oc)
		other.dialplan(oc, "Dial", "PJSIP/1004,10")
		other.play(det)
		det.Resync(ari.Snapshot{AsteriskID: s.asteriskID, Restarted: true, At: s.now, Channels: []ari.Channel{*c}})
		if got := rec.summary(); !slices.Equal(got, []string{"unanswered_transfer 1004 +31201234501"}) {
			t.Errorf("after restart: %s", join(got))
		}
		if n := det.Tracked(); n != 1 {
			t.Errorf("the other server's call must stay tracked; have %d calls", n)
		}
	})
}

func TestIdleCallsAreDropped(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	det, rec := newTestDetector(t, Options{Clock: clk})
	s := newSim(t)
	c := s.customer("c1", "+31201234501")
	s.created(c)
	s.dialplan(c, "Dial", "PJSIP/1004,10")
	s.play(det)
	clk.Advance(13 * time.Hour)
	s.raw(t, `{"type":"DeviceStateChanged","device_state":{"name":"PJSIP/1001","state":"NOT_INUSE"}}`)
	s.play(det)
	if n := det.Tracked(); n != 0 {
		t.Errorf("a call idle for 13 h is still tracked")
	}
	if len(rec.requests) != 0 {
		t.Errorf("a dropped call must not emit: %+v", rec.requests)
	}
}

// dtmfAttendedTransfer: the operator answers, consults 1003 with the *2 feature (a Local pair
// in the customer's linkedid carrying ATTENDEDTRANSFER), 1003 rings and never answers; the
// operator either completes the transfer while it rings or gives up and talks on.
func (s *sim) dtmfAttendedTransfer(complete bool) {
	s.t.Helper()
	c := s.customer("c1", "+31201234504")
	op := s.phone("op", "1001", "c1")
	s.created(c)
	s.dialplan(c, "Dial", "PJSIP/1001,20,t")
	s.created(op)
	s.dial(c, op, "ANSWER")
	s.bridge("b1", c, op)
	l1 := s.channel("l1", "Local/1003@cb-internal-00000009;1", "1001", "cb-internal", "1003", "c1")
	l2 := s.channel("l2", "Local/1003@cb-internal-00000009;2", "1001", "cb-internal", "1003", "c1")
	s.created(l1)
	s.created(l2)
	s.varset(l1, "ATTENDEDTRANSFER", op.Name)
	s.dialplan(l2, "Dial", "PJSIP/1003,10")
	tgt := s.phone("t1", "1003", "c1")
	s.created(tgt)
	s.dial(l2, tgt, "RINGING")
	if complete {
		s.attended(op, l1, c, l1, "Success")
		s.destroyed(op)
		s.left(c, "b1")
		s.enter(c, "b2", c)
		s.enter(l1, "b2", c, l1)
	}
	s.dial(l2, tgt, "NOANSWER")
	s.destroyed(tgt, l2, l1)
	if !complete {
		s.destroyed(op)
	}
	s.destroyed(c)
}

// TestSharedBySeveralServers: one detector serves several Asterisk connections at once; the
// same recorded ids on different servers are different calls.
func TestSharedBySeveralServers(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(tracesDir, "01-dial-noanswer.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	det, rec := newTestDetector(t, Options{})
	servers := []string{"pbx-a", "pbx-b", "pbx-c", "pbx-d"}
	done := make(chan error, len(servers))
	for _, id := range servers {
		go func() {
			_, err := trace.Read(bytes.NewReader(data), "cbmon", func(ev *ari.Event) {
				ev.AsteriskID = id
				det.HandleEvent(ev)
			})
			done <- err
		}()
	}
	for range servers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	for _, r := range rec.requests {
		got[r.AsteriskID]++
	}
	for _, id := range servers {
		if got[id] != 1 {
			t.Errorf("server %s: %d requests, want 1 (all: %v)", id, got[id], got)
		}
	}
}

// TestEventTypesCoverTheRecordings: an eventFilter built from EventTypes keeps every outcome.
func TestEventTypesCoverTheRecordings(t *testing.T) {
	allowed := map[ari.EventType]bool{}
	for _, typ := range EventTypes() {
		allowed[typ] = true
	}
	exp := loadExpected(t)
	files, _ := filepath.Glob(filepath.Join(tracesDir, "*.jsonl"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		det, rec := newTestDetector(t, Options{})
		if _, err := trace.Read(bytes.NewReader(data), "cbmon", func(ev *ari.Event) {
			if allowed[ev.Type] {
				det.HandleEvent(ev)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if got, want := rec.summary(), expectedSummary(exp[filepath.Base(f)]); !slices.Equal(got, want) {
			t.Errorf("%s filtered: got %s, want %s", filepath.Base(f), join(got), join(want))
		}
	}
}

// inboundDialFrom is a call from number through the from-pstn context to 1004, which rings out.
func inboundDialFrom(number string) func(*sim) {
	return func(s *sim) {
		c := s.channel("c1", "DAHDI/1-1", number, "from-pstn", "s", "")
		s.created(c)
		s.dialplan(c, "Dial", "PJSIP/1004,10")
		s.destroyed(c)
	}
}
