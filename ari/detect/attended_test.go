package detect

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/ari/trace"
	"github.com/callbackd/callbackd/internal/clock"
)

var update = flag.Bool("update", false, "rewrite the synthetic scenario files in ari/testdata/scenarios")

// scenariosDir holds synthetic scenarios: calls the real recordings have no example of, built
// here from Asterisk's documented behaviour and kept as trace files `callbackd replay` reads.
const scenariosDir = "../testdata/scenarios"

// TestAttendedTransferScenarios: every kind of attended transfer an office makes, tracked per
// consultation. The consulted extension counts as tried; it counts as reached only if the
// customer ended up with it, never because the operator talked to it. Real recordings are
// named so (TestRecordings replays them); the others are synthetic, from features.conf,
// main/bridge_basic.c (the DTMF feature's states) and main/bridge.c (REFER with Replaces).
func TestAttendedTransferScenarios(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		build func(s *sim)
		want  []string
	}{
		{
			name: "synthetic DTMF atxfer: 1003 answers the operator, the operator completes: the customer reaches 1003, nothing",
			file: "atxfer-dtmf-answered-completed.jsonl",
			build: func(s *sim) {
				x := s.dtmfConsultation()
				x.targetAnswers(s)
				x.operatorCompletes(s)
				s.destroyed(x.customer, x.l1, x.l2, x.target)
			},
			want: []string{},
		},
		{
			name: "synthetic DTMF atxfer: 1003 answers the operator, the operator aborts (atxferabort): unanswered_transfer 1003",
			file: "atxfer-dtmf-answered-aborted.jsonl",
			build: func(s *sim) {
				x := s.dtmfConsultation()
				x.targetAnswers(s)
				x.operatorAborts(s, true, false)
				s.destroyed(x.op, x.customer)
			},
			want: []string{"unanswered_transfer 1003 +31201234521"},
		},
		{
			name: "synthetic DTMF atxfer: 1003 rings, the operator aborts (atxferabort): unanswered_transfer 1003",
			file: "atxfer-dtmf-ringing-aborted.jsonl",
			build: func(s *sim) {
				x := s.dtmfConsultation()
				x.operatorAborts(s, true, true)
				s.destroyed(x.op, x.customer)
			},
			want: []string{"unanswered_transfer 1003 +31201234521"},
		},
		{
			name: "synthetic DTMF atxfer: 1003 rings until atxfernoanswertimeout, the operator is back with the customer: unanswered_transfer 1003",
			file: "atxfer-dtmf-ringing-timeout.jsonl",
			build: func(s *sim) {
				x := s.dtmfConsultation()
				s.now = s.now.Add(15 * time.Second)
				x.operatorAborts(s, false, true)
				s.destroyed(x.op, x.customer)
			},
			want: []string{"unanswered_transfer 1003 +31201234521"},
		},
		{
			name: "synthetic DTMF atxfer blonde: the operator hangs up while 1003 rings, 1003 then answers the customer: nothing",
			file: "atxfer-dtmf-blonde-answered.jsonl",
			build: func(s *sim) {
				x := s.dtmfConsultation()
				x.operatorCompletes(s)
				x.targetAnswers(s)
				s.destroyed(x.customer, x.l1, x.l2, x.target)
			},
			want: []string{},
		},
		{
			name: "synthetic SIP REFER with Replaces while 1003 rings, never answered: unanswered_transfer 1003",
			file: "atxfer-refer-ringing-noanswer.jsonl",
			build: func(s *sim) {
				x := s.referWhileRinging()
				s.dial(x.customer, x.target, "NOANSWER")
				s.varset(x.customer, "DIALSTATUS", "NOANSWER")
				s.destroyed(x.target, x.customer)
			},
			want: []string{"unanswered_transfer 1003 +31201234522"},
		},
		{
			name: "synthetic SIP REFER with Replaces while 1003 rings, then 1003 answers the customer: nothing",
			file: "atxfer-refer-ringing-answered.jsonl",
			build: func(s *sim) {
				x := s.referWhileRinging()
				s.dial(x.customer, x.target, "ANSWER")
				s.bridge("b4", x.customer, x.target)
				s.destroyed(x.target, x.customer)
			},
			want: []string{},
		},
	}
	expected := map[string][]expectedRequest{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t)
			tt.build(s)
			path := filepath.Join(scenariosDir, tt.file)
			data := scenarioFile(t, tt.name, s.events)
			if *update {
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
			} else if disk, err := os.ReadFile(path); err != nil || !bytes.Equal(disk, data) {
				t.Fatalf("%s is not what this test builds (%v); rewrite it: go test ./ari/detect -run TestAttendedTransferScenarios -update", path, err)
			}
			for _, variant := range []struct {
				name   string
				mutate func(*ari.Event)
			}{{"with linkedid", nil}, {"without linkedid", stripLinkedID}} {
				rec := replayRecording(t, path, variant.mutate)
				if got := rec.summary(); !slices.Equal(got, tt.want) {
					t.Errorf("%s: requests:\n got %s\nwant %s", variant.name, join(got), join(tt.want))
				}
			}
		})
		expected[tt.file] = []expectedRequest{}
		for _, w := range tt.want {
			f := strings.Fields(w)
			expected[tt.file] = append(expected[tt.file], expectedRequest{Reason: f[0], Target: f[1], Number: f[2]})
		}
	}
	// expected.json beside the files says the same, for `callbackd replay` and for people.
	data, err := json.MarshalIndent(expected, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, '\n')
	path := filepath.Join(scenariosDir, "expected.json")
	if *update {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if disk, err := os.ReadFile(path); err != nil || !bytes.Equal(disk, data) {
		t.Errorf("%s does not list the scenarios' outcomes (%v); rewrite it with -update", path, err)
	}
}

// scenarioFile writes events as a recording of one subscribeAll socket, opened by a note that
// says what the scenario is.
func scenarioFile(t *testing.T, about string, events []*ari.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	clk := clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	w := trace.NewWriter(&buf, clk)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Write(trace.Line{Kind: trace.KindWS, App: "monitor", State: "connected",
		URL: "ws://127.0.0.1:8088/ari/events?app=monitor&subscribeAll=true"}))
	must(w.Write(trace.Line{Kind: trace.KindNote, Text: about}))
	for _, ev := range events {
		if tm, err := ev.Time(); err == nil {
			clk.Set(tm)
		}
		raw, err := json.Marshal(ev)
		must(err)
		must(w.Write(trace.Line{Kind: trace.KindEvent, App: ev.Application, Event: raw}))
	}
	return buf.Bytes()
}

// consultationCall is a customer's call to the operator with a consultation going on.
type consultationCall struct {
	customer, op, l1, l2, target *ari.Channel
}

// dtmfConsultation: +31201234521 calls the operator 1001, who presses the features.conf
// atxfer code (*2) and dials 1003, as in trace 14: Asterisk creates Local/1003@cb-consult
// in the customer's linkedid with ATTENDEDTRANSFER (the operator's channel name) on both
// halves, puts the ;1 half and the operator in a consultation bridge, and the ;2 half runs
// Dial(PJSIP/1003,30); 1003 rings.
func (s *sim) dtmfConsultation() *consultationCall {
	x := &consultationCall{customer: s.customer("c1", "+31201234521"), op: s.phone("op", "1001", "c1")}
	s.created(x.customer)
	s.dialplan(x.customer, "Dial", "PJSIP/1001,20,t")
	s.created(x.op)
	s.dial(x.customer, x.op, "ANSWER")
	s.bridge("b1", x.customer, x.op)
	s.dtmf(x.op, "*", "2")
	s.add(&ari.Event{Type: ari.EventChannelHold, Channel: s.snap(x.op)})
	s.dtmf(x.op, "1", "0", "0", "3")
	x.l1 = s.channel("l1", "Local/1003@cb-consult-00000002;1", "", "cb-consult", "1003", "c1")
	x.l2 = s.channel("l2", "Local/1003@cb-consult-00000002;2", "", "cb-consult", "1003", "c1")
	s.created(x.l1)
	s.created(x.l2)
	s.varset(x.l1, "ATTENDEDTRANSFER", x.op.Name)
	s.varset(x.l2, "ATTENDEDTRANSFER", x.op.Name)
	x.l2.Caller.Number = "1001"
	s.add(&ari.Event{Type: ari.EventChannelCallerID, Channel: s.snap(x.l2)})
	s.dialplan(x.l2, "Dial", "PJSIP/1003,30")
	s.enter(x.l1, "b2", x.l1)
	s.varset(x.l1, "ATTENDEDTRANSFER", "")
	s.left(x.op, "b1")
	s.enter(x.op, "b2", x.l1, x.op)
	x.target = s.phone("t1", "1003", "c1")
	s.created(x.target)
	s.dial(x.l2, x.target, "")
	s.state(x.target, "Ringing")
	s.dial(x.l2, x.target, "RINGING")
	return x
}

// targetAnswers: 1003 picks up the Local ;2 half's Dial.
func (x *consultationCall) targetAnswers(s *sim) {
	s.state(x.target, "Up")
	s.dial(x.l2, x.target, "ANSWER")
	s.enter(x.l2, "b3", x.l2)
	s.enter(x.target, "b3", x.l2, x.target)
}

// operatorCompletes: the operator hangs up (atxferdropcall=yes, the default), which completes
// the transfer; the consultation bridge merges into the customer's, and the event names the
// operator on both legs and no transfer target (trace 14).
func (x *consultationCall) operatorCompletes(s *sim) {
	s.add(&ari.Event{Type: ari.EventChannelHangupRequest, Channel: s.snap(x.op)})
	s.left(x.op, "b2")
	s.left(x.l1, "b2")
	s.enter(x.l1, "b1", x.customer, x.l1)
	s.add(&ari.Event{Type: ari.EventBridgeAttendedTransfer, TransfererFirstLeg: s.snap(x.op),
		TransfererSecondLeg: s.snap(x.op), Transferee: s.snap(x.customer), Result: "Success",
		DestinationType: "bridge", DestinationBridge: "b1",
		TransfererFirstLegBridge:  &ari.Bridge{ID: "b1", BridgeType: "mixing", Channels: []string{x.customer.ID, x.l1.ID}},
		TransfererSecondLegBridge: &ari.Bridge{ID: "b2", BridgeType: "mixing", Channels: []string{}}})
	s.destroyed(x.op)
}

// operatorAborts: the consultation ends without a transfer — the operator pressed atxferabort
// (*1) or atxfernoanswertimeout ran out while 1003 rang. bridge_basic.c's TRANSFER_REBRIDGE
// publishes a failed attended transfer, hangs the consultation up and puts the operator back
// with the customer.
func (x *consultationCall) operatorAborts(s *sim, pressed, ringing bool) {
	if pressed {
		s.dtmf(x.op, "*", "1")
	}
	s.add(&ari.Event{Type: ari.EventBridgeAttendedTransfer, TransfererFirstLeg: s.snap(x.op),
		TransfererSecondLeg: s.snap(x.op), Transferee: s.snap(x.customer), Result: "Fail",
		DestinationType: "fail"})
	s.add(&ari.Event{Type: ari.EventChannelHangupRequest, Channel: s.snap(x.l1)})
	s.left(x.l1, "b2")
	s.left(x.op, "b2")
	s.enter(x.op, "b1", x.customer, x.op)
	s.add(&ari.Event{Type: ari.EventChannelUnhold, Channel: s.snap(x.op)})
	if ringing {
		s.dial(x.l2, x.target, "CANCEL")
	} else {
		s.left(x.target, "b3")
		s.left(x.l2, "b3")
	}
	s.destroyed(x.l1, x.l2, x.target)
}

// referWhileRinging: +31201234522 calls the operator 1001, whose phone puts the call on hold,
// calls 1003 (a call of its own) and, while 1003 rings, sends REFER with Replaces. The
// operator's second leg is not bridged, so main/bridge.c moves the customer into its place
// (destination_type "application": Dial); the moved channel's old identity gets a synthetic
// NOANSWER and the customer's a new Dial, which decides.
func (s *sim) referWhileRinging() *consultationCall {
	x := &consultationCall{customer: s.customer("c1", "+31201234522"), op: s.phone("op", "1001", "c1")}
	s.created(x.customer)
	s.dialplan(x.customer, "Dial", "PJSIP/1001,20,t")
	s.created(x.op)
	s.dial(x.customer, x.op, "ANSWER")
	s.bridge("b1", x.customer, x.op)
	s.add(&ari.Event{Type: ari.EventChannelHold, Channel: s.snap(x.op)})
	op2 := s.channel("op2", "PJSIP/1001-op2", "1001", "from-sip", "1003", "")
	x.target = s.phone("t1", "1003", "op2")
	s.created(op2)
	s.dialplan(op2, "Dial", "PJSIP/1003,30")
	s.created(x.target)
	s.dial(op2, x.target, "")
	s.dial(op2, x.target, "RINGING")
	s.add(&ari.Event{Type: ari.EventBridgeAttendedTransfer, TransfererFirstLeg: s.snap(x.op),
		TransfererSecondLeg: s.snap(op2), Transferee: s.snap(x.customer), Result: "Success",
		IsExternal: true, DestinationType: "application", DestinationApplication: "Dial",
		TransfererFirstLegBridge: &ari.Bridge{ID: "b1", BridgeType: "mixing", Channels: []string{x.customer.ID, x.op.ID}}})
	s.left(x.op, "b1")
	s.left(x.customer, "b1")
	s.destroyed(x.op)
	s.dial(op2, x.target, "NOANSWER") // the old identity's, synthetic
	s.destroyed(op2)
	x.customer.Dialplan = ari.Dialplan{Context: "from-sip", Exten: "1003", Priority: 2, AppName: "Dial", AppData: "PJSIP/1003,30"}
	s.dial(x.customer, x.target, "")
	s.dial(x.customer, x.target, "RINGING")
	return x
}

func (s *sim) dtmf(c *ari.Channel, digits ...string) {
	for _, d := range digits {
		s.add(&ari.Event{Type: ari.EventChannelDtmfReceived, Channel: s.snap(c), Digit: d, DurationMs: 120})
	}
}
