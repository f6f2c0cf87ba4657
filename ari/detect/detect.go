// Package detect turns ARI events into callback requests: it follows every call on the PBX and,
// when a customer's call is over, says whom the customer tried to reach and did not.
//
// # Grouping channels into calls
//
// A call is the set of channels sharing an Asterisk linkedid. ARI snapshots carry no linkedid
// field, so ari.conf must export it:
//
//	[general]
//	channelvars = CHANNEL(linkedid)
//
// Without that setting the detector falls back to building the groups itself: a Dial peer
// joins its caller's call, the ";2" half of a Local pair joins the ";1" half, and channels that
// meet in a bridge join the oldest call in it (what Asterisk does to linkedids). The fallback
// follows every recorded flow but can split a call whose legs meet only in ways ARI does not
// show (a masquerade, a pickup), so exporting the linkedid is required for production.
//
// A call is over only when its last channel is destroyed: app_voicemail reports VMSTATUS and
// VM_MESSAGEFILE after the caller hung up, sometimes after the caller's channel is gone.
//
// # Who is the customer
//
// The customer is the call's originating channel (the one whose id is the linkedid) when it is
// not a Local channel and its caller number is not an internal extension and either it entered
// the dialplan in a configured inbound context or its caller number looks external.
//
// # What counts as tried and reached
//
// Tried: a dialplan Dial() of an internal extension by a non-staff channel of the call (the
// customer's or a Local channel's: a staff phone's own dials are the staff member's business),
// the Dial events of such a channel, a successful blind transfer (BridgeBlindTransfer exten)
// and a successful attended transfer (BridgeAttendedTransfer transfer target). Dial() is read
// from the dialplan application because an unregistered extension yields no Dial event at all
// (only DIALSTATUS=CHANUNAVAIL).
//
// Reached: a Dial ANSWER from the extension, or the extension's phone in one bridge with a
// channel of the call. Reached is sticky: the synthetic NOANSWER Asterisk emits for the old
// identity of a masqueraded channel, the late DIALSTATUS=ANSWER of a blind transfer and the
// connected line (which keeps the last party dialled) are therefore never read as outcomes.
//
// A ring group — one Dial() of several extensions — is one destination: reached when any member
// answered; if none did, one request whose target is the dialplan extension that rang the group
// when it is internal (the number the customer or operator chose, e.g. 600), else the first
// member.
//
// A Queue() is one destination too, named after the queue, whatever members it rings. A Dial
// answered through a call forward (the Dial's "forwarded" channel) answers for the extension
// that forwarded.
//
// # Attended transfers
//
// Each consultation is followed on its own. The consulted extension counts as tried on the
// customer's behalf as soon as it is rung, and as reached only if the customer ended up with it
// — never because the operator talked to it:
//
//   - DTMF feature (features.conf atxfer): Asterisk creates a Local/<ext>@<TRANSFER_CONTEXT>
//     pair in the operator's call with ATTENDEDTRANSFER (the operator's channel name) on both
//     halves; the ;2 half's Dial() rings the extension. An answer there is the operator's.
//     Completing the transfer (BridgeAttendedTransfer, also "blonde": the operator hangs up
//     while the target rings, with no transfer_target in the event) hands the pair, and
//     whoever answered in it, to the customer. An aborted consultation (atxferabort) or one
//     that times out (atxfernoanswertimeout, after which Asterisk rings the operator back) is
//     a transfer that bounced back: the extension was tried and not reached.
//   - SIP REFER with Replaces: the operator's second call is a call of its own. Completed
//     after the target answered, the bridges are joined and the customer reaches the target;
//     completed while it rings, the customer replaces the operator's ringing leg and the
//     Dial events that follow decide.
//
// Voicemail: a message was left for mailbox X when VM_MESSAGEFILE is set on a channel of the
// call (app_voicemail sets it only once the file is stored; a hang-up in the greeting leaves
// it unset). It wins over an unanswered attempt for the same target.
//
// A caller in VoiceMail() when the detector stopped hearing the call — the events socket
// dropped, or the daemon restarted (the kept call names the VoiceMail() in progress) — and gone
// by the resync has lost VM_MESSAGEFILE and VMSTATUS in the gap: whether a message was left can
// no longer be known, and the call owes a voicemail callback for that mailbox all the same
// (Request.VoicemailGap), since a caller who left a message and is not called back is the worse
// mistake. The snapshot's dialplan application (VoiceMail, the mailboxes in its data) counts as
// well as the ChannelDialplan event. A caller still in VoiceMail() at the resync is followed on,
// and a VMSTATUS seen before the gap (the voicemail is over) decides as without one. The
// detector has no REST client, so it cannot read the variables back from a channel.
//
// # Our own calls
//
// Callback legs are placed by callbackd through ARI and must never become promises. A channel
// is ours, and its whole call is never a customer call, when any of these holds: the event came
// from one of the control applications (they see only channels they own); the channel entered
// Stasis() of a control application; its id is one the dialer gives its legs
// (ari.IsCallbackLeg, "cbd-<promise>-<token>-agent|customer"), which needs no configuration.
//
// Channels of Asterisk's dial API (main/dial.c) — the "AppDial2" placeholder, or a Dial event
// without a caller — are not ours: ARI and AMI originates, Page() legs and the recall of an
// attended transfer's operator (trace 14) all look like that. Such a channel is never a
// customer calling in (a call it originated makes no promise), but when it joins a customer's
// call, the call stays the customer's.
//
// # Reaches
//
// Whenever a customer call reaches an internal target (a person, a ring group, a Queue()), the
// detector emits a Reach at once, whether or not anybody owes that customer a callback: which
// promises a number is owed lives in Redis (queue.Asked), and the event goroutine must never
// wait for Redis. The dialer's intake looks the number up off that goroutine and resolves what
// the reach settles, so a restarted daemon, or another one, still resolves.
//
// # Surviving a restart
//
// With a Memory (queue.CallMemory) the detector hands it, after each event that changed what
// a restart would need, a compact record of every open customer call; the daemon restores
// them (Restore) before its first resync, which ends those that ended while no daemon
// listened. The memory is written off the event goroutine: when Redis is down the detector
// works in memory as before. Several daemons watching one Asterisk each emit the call's
// request; the store makes one promise of them (queue.Request.OncePerCall).
package detect

import (
	"regexp"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/callbackd/callbackd/ari"
	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/phone"
	"github.com/callbackd/callbackd/queue"
)

// Defaults used when Options leave a field empty.
const (
	DefaultInternalExtension = `^[0-9]{2,6}$`
	DefaultCustomerNumber    = `^(\+[0-9]{6,15}|[0-9]{7,15})$`
)

const (
	defaultCountry = "NL"
	// idleLimit drops a call that has seen no event for this long, so lost ChannelDestroyed
	// events (a socket drop without resync) cannot grow memory without bound.
	idleLimit     = 12 * time.Hour
	sweepInterval = time.Minute
)

// Sink receives what the detector decides. It is called without the detector's lock held but
// from the goroutine that delivered the event, so it should not block for long.
type Sink interface {
	Request(Request)
	Reached(Reach)
}

// Request asks for a callback: the customer Number tried to reach Target and did not.
type Request struct {
	AsteriskID string
	LinkedID   string
	Number     string // E.164
	Name       string
	Reason     queue.Reason // queue.ReasonVoicemail or queue.ReasonUnansweredTransfer
	Target     string       // extension, or mailbox without @context
	Channel    string       // the customer's channel id
	At         time.Time
	// What the customer asked for, beside Target, for routing the promise to a callback
	// queue (detector.routes); each is "" when the call did not show it.
	AsteriskQueue string // the Queue() name, when Target is an Asterisk queue
	DialString    string // the Dial() destinations that rang Target ("PJSIP/1001&PJSIP/1002")
	DID           string // the extension the customer's call arrived at: the number dialled
	Context       string // the dialplan context the customer's call came in through
	// VoicemailGap: the caller was in VoiceMail() for Target when the events socket dropped
	// (or no daemon listened) and was gone by the resync, so VM_MESSAGEFILE and VMSTATUS were
	// lost and whether a message was left is not known. Reason is voicemail all the same: a
	// caller who left a message and is not called back is the worse mistake.
	// The promise says so (VoicemailGapNote).
	VoicemailGap bool
}

// Reach says the customer Number reached Target (an extension, a ring group's extension or an
// Asterisk queue) in a call: it may resolve a promise the customer is owed.
type Reach struct {
	Number     string
	Target     string
	AsteriskID string
	LinkedID   string
	At         time.Time
}

// Stats are the detector's counters since New.
type Stats struct {
	Events    uint64 // events handled
	Unknown   uint64 // events of a type the detector does not know, skipped
	Malformed uint64 // events missing what their type must carry, skipped
	Late      uint64 // events about channels of calls already over, skipped
	Calls     uint64 // calls tracked
	Requests  uint64 // requests emitted
	Reaches   uint64 // reaches of a target by a customer emitted
	Restored  uint64 // calls taken back from the Memory of a previous process
	// VoicemailGaps are voicemail requests emitted for a caller whose VoiceMail() ended unseen
	// (Request.VoicemailGap).
	VoicemailGaps uint64
}

// Options configure a Detector. Zero values take the documented defaults.
type Options struct {
	// InboundContexts are dialplan contexts where calls from outside arrive (trunk contexts).
	InboundContexts []string
	// InternalExtension matches internal extensions; nil → DefaultInternalExtension.
	InternalExtension *regexp.Regexp
	// CustomerNumber matches external caller numbers; nil → DefaultCustomerNumber.
	CustomerNumber *regexp.Regexp
	// DefaultCountry is the region (ISO 3166 alpha-2, e.g. NL) whose numbering plan national
	// caller numbers (0201234502, 201234502) are read in; "" → the main region of
	// DefaultCountryCode, else NL.
	DefaultCountry string
	// DefaultCountryCode is the older spelling of DefaultCountry: a calling code ("31").
	DefaultCountryCode string
	// ControlApps are callbackd's own Stasis applications; nil → ["callbackd"].
	ControlApps []string
	Sink        Sink
	// Memory, when set, keeps the calls followed beyond this process (see Memory).
	Memory Memory
	Clock  clock.Clock
	Logger *zap.Logger
	// Mask shows a phone number in logs; nil → phone.Mask (log.mask_numbers).
	Mask func(string) string
}

// Detector is an ari.Handler that emits callback requests. It is safe for use by several
// connections at once.
type Detector struct {
	inbound  map[string]bool
	internal *regexp.Regexp
	customer *regexp.Regexp
	region   string
	control  map[string]bool
	sink     Sink
	memory   Memory
	clock    clock.Clock
	log      *zap.Logger
	mask     func(string) string

	mu        sync.Mutex
	servers   map[string]*server
	stats     Stats
	lastSweep time.Time
	outbox    []func()
	evAt      time.Time // the current event's time, for calls a move leaves empty
}

var _ ari.Handler = (*Detector)(nil)

// New returns a Detector with opts applied over the defaults.
func New(opts Options) *Detector {
	d := &Detector{
		inbound:  map[string]bool{},
		internal: opts.InternalExtension,
		customer: opts.CustomerNumber,
		region:   opts.DefaultCountry,
		control:  map[string]bool{},
		sink:     opts.Sink,
		memory:   opts.Memory,
		clock:    opts.Clock,
		log:      opts.Logger,
		mask:     opts.Mask,
		servers:  map[string]*server{},
	}
	if d.mask == nil {
		d.mask = phone.Mask
	}
	if d.internal == nil {
		d.internal = regexp.MustCompile(DefaultInternalExtension)
	}
	if d.customer == nil {
		d.customer = regexp.MustCompile(DefaultCustomerNumber)
	}
	if d.region == "" {
		d.region = phone.RegionForCountryCode(opts.DefaultCountryCode)
	}
	if d.region == "" {
		d.region = defaultCountry
	}
	for _, c := range opts.InboundContexts {
		d.inbound[c] = true
	}
	apps := opts.ControlApps
	if apps == nil {
		apps = []string{"callbackd"}
	}
	for _, a := range apps {
		d.control[a] = true
	}
	if d.sink == nil {
		d.sink = discardSink{}
	}
	if d.clock == nil {
		d.clock = clock.Real{}
	}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	return d
}

// Stats returns a copy of the counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Tracked is the number of calls currently followed (for tests and a gauge).
func (d *Detector) Tracked() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, s := range d.servers {
		n += len(s.calls)
	}
	return n
}

// HandleEvent implements ari.Handler.
func (d *Detector) HandleEvent(ev *ari.Event) {
	d.mu.Lock()
	d.handle(ev)
	out := d.takeOutbox()
	d.mu.Unlock()
	for _, f := range out {
		f()
	}
}

// Resync implements ari.Handler: calls of snap.AsteriskID none of whose live channels are in
// the snapshot ended while we were not listening, and are finalized as if their last channel
// had just been destroyed; after a restart every call of that server is over.
func (d *Detector) Resync(snap ari.Snapshot) {
	d.mu.Lock()
	d.resync(snap)
	out := d.takeOutbox()
	d.mu.Unlock()
	for _, f := range out {
		f()
	}
}

func (d *Detector) takeOutbox() []func() {
	out := d.outbox
	d.outbox = nil
	return out
}

func (d *Detector) emitRequest(r Request) {
	d.stats.Requests++
	d.log.Info("callback request",
		zap.String("number", d.mask(r.Number)), zap.String("reason", string(r.Reason)),
		zap.String("target", r.Target), zap.String("linkedid", r.LinkedID))
	sink := d.sink
	d.outbox = append(d.outbox, func() { sink.Request(r) })
}

func (d *Detector) emitReach(r Reach) {
	d.stats.Reaches++
	// Debug: every answered customer call reaches someone; the intake logs what it resolves.
	d.log.Debug("customer reached target",
		zap.String("number", d.mask(r.Number)), zap.String("target", r.Target),
		zap.String("linkedid", r.LinkedID))
	sink := d.sink
	d.outbox = append(d.outbox, func() { sink.Reached(r) })
}

type discardSink struct{}

func (discardSink) Request(Request) {}
func (discardSink) Reached(Reach)   {}
