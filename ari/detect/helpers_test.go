package detect

import (
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
)

// recorder is a Sink that keeps everything it is given.
type recorder struct {
	mu       sync.Mutex
	requests []Request
	reached  []Reach
}

func (r *recorder) Request(q Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, q)
}

func (r *recorder) Reached(q Reach) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reached = append(r.reached, q)
}

// summary is "reason target number" per request, sorted, for comparing outcomes.
func (r *recorder) summary() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []string{}
	for _, q := range r.requests {
		out = append(out, fmt.Sprintf("%s %s %s", q.Reason, q.Target, q.Number))
	}
	sort.Strings(out)
	return out
}

// reachedSummary is "reached target number" per reach, in the order emitted.
func (r *recorder) reachedSummary() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []string{}
	for _, q := range r.reached {
		out = append(out, fmt.Sprintf("reached %s %s", q.Target, q.Number))
	}
	return out
}

func newTestDetector(t *testing.T, opts Options) (*Detector, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts.Sink = rec
	if opts.Clock == nil {
		opts.Clock = clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	}
	return New(opts), rec
}

// sim builds event sequences the way Asterisk would send them to a subscribeAll app.
type sim struct {
	t          *testing.T
	asteriskID string
	app        string
	now        time.Time
	noLinkedID bool // as without `channelvars = CHANNEL(linkedid)`
	seq        int
	events     []*ari.Event
}

func newSim(t *testing.T) *sim {
	t.Helper()
	return &sim{t: t, asteriskID: "02:fc:00:00:00:01", app: "monitor",
		now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
}

// channel makes a channel snapshot; lid "" means it starts its own linkedid.
func (s *sim) channel(id, name, number, context, exten, lid string) *ari.Channel {
	if lid == "" {
		lid = id
	}
	return &ari.Channel{ID: id, Name: name, State: "Ring", Caller: ari.CallerID{Number: number},
		Dialplan:    ari.Dialplan{Context: context, Exten: exten, Priority: 1},
		ChannelVars: map[string]string{ari.LinkedIDVar: lid}}
}

// customer is an inbound trunk channel with its own linkedid.
func (s *sim) customer(id, number string) *ari.Channel {
	return s.channel(id, "PJSIP/trunk-"+id, number, "from-trunk", "+31205550100", "")
}

// phone is an outgoing leg to an internal phone, in the linkedid of lid.
func (s *sim) phone(id, ext, lid string) *ari.Channel {
	return s.channel(id, "PJSIP/"+ext+"-"+id, ext, "from-sip", "s", lid)
}

func (s *sim) snap(c *ari.Channel) *ari.Channel {
	if c == nil {
		return nil
	}
	cp := *c
	cp.ChannelVars = maps.Clone(c.ChannelVars)
	if s.noLinkedID {
		cp.ChannelVars = nil
	}
	return &cp
}

func (s *sim) add(ev *ari.Event) *ari.Event {
	s.seq++
	s.now = s.now.Add(time.Second)
	ev.Timestamp = s.now.Format(ari.TimeLayout)
	ev.AsteriskID = s.asteriskID
	if ev.Application == "" {
		ev.Application = s.app
	}
	s.events = append(s.events, ev)
	return ev
}

func (s *sim) created(c *ari.Channel) {
	s.add(&ari.Event{Type: ari.EventChannelCreated, Channel: s.snap(c)})
}

func (s *sim) dialplan(c *ari.Channel, app, data string) {
	c.Dialplan.AppName, c.Dialplan.AppData = app, data
	c.Dialplan.Priority++
	s.add(&ari.Event{Type: ari.EventChannelDialplan, Channel: s.snap(c), DialplanApp: app, DialplanAppData: data})
}

func (s *sim) goTo(c *ari.Channel, context, exten string) {
	c.Dialplan.Context, c.Dialplan.Exten, c.Dialplan.Priority = context, exten, 0
}

func (s *sim) varset(c *ari.Channel, name, value string) {
	s.add(&ari.Event{Type: ari.EventChannelVarset, Channel: s.snap(c), Variable: name, Value: value})
}

func (s *sim) state(c *ari.Channel, state string) {
	c.State = state
	s.add(&ari.Event{Type: ari.EventChannelStateChange, Channel: s.snap(c)})
}

// dial is a Dial event; caller nil is a dial by ARI.
func (s *sim) dial(caller, peer *ari.Channel, status string) {
	s.add(&ari.Event{Type: ari.EventDial, Caller: s.snap(caller), Peer: s.snap(peer), DialStatus: status})
}

// enter puts c into bridge id, which then holds members (c included).
func (s *sim) enter(c *ari.Channel, id string, members ...*ari.Channel) {
	b := &ari.Bridge{ID: id, Technology: "simple_bridge", BridgeType: "mixing"}
	for _, m := range members {
		b.Channels = append(b.Channels, m.ID)
	}
	s.add(&ari.Event{Type: ari.EventChannelEnteredBridge, Channel: s.snap(c), Bridge: b})
}

func (s *sim) left(c *ari.Channel, id string) {
	s.add(&ari.Event{Type: ari.EventChannelLeftBridge, Channel: s.snap(c), Bridge: &ari.Bridge{ID: id}})
}

// bridge answers a and b to each other: both enter one bridge, and Asterisk copies the older
// linkedid (a's) to b.
func (s *sim) bridge(id string, a, b *ari.Channel) {
	b.ChannelVars[ari.LinkedIDVar] = a.ChannelVars[ari.LinkedIDVar]
	s.enter(a, id, a)
	s.enter(b, id, a, b)
}

func (s *sim) blind(transferer, transferee *ari.Channel, exten, context string) {
	s.add(&ari.Event{Type: ari.EventBridgeBlindTransfer, Channel: s.snap(transferer), Transferee: s.snap(transferee),
		Exten: exten, Context: context, Result: "Success", IsExternal: true})
}

func (s *sim) attended(first, second, transferee, target *ari.Channel, result string) {
	s.add(&ari.Event{Type: ari.EventBridgeAttendedTransfer, TransfererFirstLeg: s.snap(first),
		TransfererSecondLeg: s.snap(second), Transferee: s.snap(transferee), TransferTarget: s.snap(target),
		Result: result, DestinationType: "bridge"})
}

func (s *sim) destroyed(cs ...*ari.Channel) {
	for _, c := range cs {
		cause := 16
		s.add(&ari.Event{Type: ari.EventChannelDestroyed, Channel: s.snap(c), Cause: &cause, CauseTxt: "Normal Clearing"})
	}
}

func (s *sim) raw(t *testing.T, js string) {
	t.Helper()
	ev, err := ari.Decode([]byte(js))
	if err != nil {
		t.Fatalf("bad raw event in test: %v", err)
	}
	s.events = append(s.events, ev)
}

func (s *sim) play(d *Detector) {
	for _, ev := range s.events {
		d.HandleEvent(ev)
	}
	s.events = nil
}

// leaveVoicemail runs VoiceMail(box) on c and leaves a message, as app_voicemail reports it:
// after the caller hung up.
func (s *sim) leaveVoicemail(c *ari.Channel, box string) {
	s.dialplan(c, "VoiceMail", box+"@default,u")
	s.state(c, "Up")
	s.add(&ari.Event{Type: ari.EventChannelHangupRequest, Channel: s.snap(c)})
	s.varset(c, "VM_MESSAGEFILE", "/var/spool/asterisk/voicemail/default/"+box+"/INBOX/msg0000")
	s.varset(c, "VMSTATUS", "SUCCESS")
}

func join(ss []string) string { return "[" + strings.Join(ss, "; ") + "]" }
