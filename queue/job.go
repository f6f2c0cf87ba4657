package queue

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callbackd/callbackd/internal/phone"
)

// State is where a promise is in its life; see the diagram in doc.go.
type State string

// The states of a promise. The first three are open; the rest are final.
const (
	StatePending     State = "pending"     // waiting for its not-before, or due and waiting for an agent
	StateDialing     State = "dialing"     // claimed by a worker holding a lease
	StateConnected   State = "connected"   // the customer answered; the call is being bridged
	StateKept        State = "kept"        // connected no later than the deadline
	StateLate        State = "late"        // connected, but after the deadline
	StateUnreachable State = "unreachable" // every attempt used without reaching the customer
	StateCancelled   State = "cancelled"   // withdrawn (by an operator, the API or a worker)
	StateResolved    State = "resolved"    // the customer reached the business themselves
	StateExpired     State = "expired"     // given up without dialling: the deadline made it pointless
	StateFailed      State = "failed"      // can never be dialled, e.g. the number was refused
)

// States lists every state, open ones first.
func States() []State {
	return []State{StatePending, StateDialing, StateConnected, StateKept, StateLate,
		StateUnreachable, StateCancelled, StateResolved, StateExpired, StateFailed}
}

// Open reports whether the promise still waits for a call.
func (s State) Open() bool {
	return s == StatePending || s == StateDialing || s == StateConnected
}

// ParseState reads a state by name; an unknown name gets an error listing the known ones.
func ParseState(name string) (State, error) {
	s := State(name)
	if !s.valid() {
		known := make([]string, 0, len(States()))
		for _, k := range States() {
			known = append(known, string(k))
		}
		return "", fmt.Errorf("unknown state %q (known: %s)", name, strings.Join(known, ", "))
	}
	return s, nil
}

func (s State) valid() bool {
	for _, x := range States() {
		if s == x {
			return true
		}
	}
	return false
}

// Reason says why a customer is owed a call.
type Reason string

// The reasons a promise is made.
const (
	ReasonVoicemail          Reason = "voicemail"           // the customer left a message
	ReasonUnansweredTransfer Reason = "unanswered_transfer" // an internal target never answered
	ReasonOffer              Reason = "offer"               // the customer accepted a callback offer
	ReasonAPI                Reason = "api"                 // created through the API (web form, CRM)
)

// Reasons lists every reason, in the order they are documented.
func Reasons() []Reason {
	return []Reason{ReasonVoicemail, ReasonUnansweredTransfer, ReasonOffer, ReasonAPI}
}

func (r Reason) valid() bool { return slices.Contains(Reasons(), r) }

// Source says which Asterisk call a promise came from, so an agent or an auditor can find it.
type Source struct {
	AsteriskID string `json:"asterisk_id"`
	LinkedID   string `json:"linkedid"`
	Channel    string `json:"channel"`
}

// Attempt is one line of a promise's history: a claim, a dial result, a merge, a lease expiry.
type Attempt struct {
	At     time.Time `json:"at"`
	Result string    `json:"result"`
	Detail string    `json:"detail,omitempty"`
}

// Lease is a worker's exclusive hold on a job. Token is the fencing token: every fenced call
// must present it, and it stops working the moment the lease is reclaimed.
type Lease struct {
	Token   int64     `json:"token"`
	Expires time.Time `json:"expires"`
	Worker  string    `json:"worker"`
	// First is set by Claim when the job was never claimed before, so that no call of an
	// earlier claim can still be up; false when that is not known (any other read).
	First bool `json:"-"`
	// Heard is when another daemon heard this claim's customer answer (Store.MarkHeard): its
	// janitor hears every callback leg, and the claim's own daemon may not (another client
	// holding its control app). Zero when nobody did, or it was an earlier claim's customer.
	Heard time.Time `json:"heard,omitzero"`
}

// Ref names a job. Job ids do not encode their queue, and every key of a queue lives under the
// queue's hash tag, so both are needed to find a job.
type Ref struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
}

// Job is a callback promise. Times are stored with millisecond precision.
type Job struct {
	ID     string `json:"id"`
	Queue  string `json:"queue"`
	Number string `json:"number"` // E.164
	Name   string `json:"name,omitempty"`
	// Reasons holds the reason of the first request and then every new reason merged in.
	Reasons []Reason `json:"reasons"`
	// Target is the extension, mailbox or queue the customer first tried to reach.
	Target string `json:"target"`
	// Targets is Target followed by every different target merged in.
	Targets []string `json:"targets"`
	// Owner is the agent who should preferably make the call: the first target.
	Owner       string    `json:"owner,omitempty"`
	Created     time.Time `json:"created"`
	NotBefore   time.Time `json:"not_before"`
	Deadline    time.Time `json:"deadline"`
	Attempts    int       `json:"attempts"`
	MaxAttempts int       `json:"max_attempts"`
	State       State     `json:"state"`
	Source      Source    `json:"source"`
	History     []Attempt `json:"history"`
	// Lease is set while the job is dialing or connected.
	Lease Lease `json:"lease"`
	// DialledAt is when the current claim was about to ring the customer (MarkDialled), zero
	// while it has rung at most the agent.
	DialledAt time.Time `json:"dialled_at,omitzero"`
	// ConnectedAt is when the customer answered, zero until then.
	ConnectedAt time.Time `json:"connected_at"`
	Outcome     State     `json:"outcome,omitempty"`
	FinishedAt  time.Time `json:"finished_at"`
	Note        string    `json:"note,omitempty"`
	// HoldUntil ends the owner's preference window when it was set in business time.
	HoldUntil time.Time `json:"hold_until,omitzero"`
	// AtRiskFromStart: the forecast said, when it was made, that the deadline would be missed.
	AtRiskFromStart bool `json:"at_risk_from_start,omitempty"`
	// ExternalRef is the caller's reference for the promise (Request.ExternalRef).
	ExternalRef string `json:"external_ref,omitempty"`
}

// Ref returns the job's reference.
func (j Job) Ref() Ref { return Ref{Queue: j.Queue, ID: j.ID} }

// Reason returns the primary reason: the one the promise was made for.
func (j Job) Reason() Reason {
	if len(j.Reasons) == 0 {
		return ""
	}
	return j.Reasons[0]
}

type historyEntry struct {
	At     float64 `json:"at"`
	Result string  `json:"result"`
	Detail string  `json:"detail"`
}

// jobFromReply decodes an HGETALL reply as the scripts return it.
func jobFromReply(v any) (Job, error) {
	h, err := hashFromReply(v)
	if err != nil {
		return Job{}, err
	}
	return jobFromHash(h)
}

// hashFromReply reads an HGETALL reply as the scripts return it into a map.
func hashFromReply(v any) (map[string]string, error) {
	flat, ok := v.([]any)
	if !ok || len(flat)%2 != 0 {
		return nil, fmt.Errorf("decoding job: reply is %T, not a field/value list", v)
	}
	h := make(map[string]string, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		k, _ := flat[i].(string)
		val, _ := flat[i+1].(string)
		h[k] = val
	}
	return h, nil
}

// finishedFields are the fields whose values a finish answers (finish in common.lua), in its
// order.
var finishedFields = []string{"id", "queue", "number", "outcome", "reasons", "target", "created", "not_before",
	"deadline", "attempts", "max_attempts", "connected", "finished", "worker"}

// jobFromFinished decodes a finish's answer: the values of finishedFields. The state of a
// finished job is its outcome.
func jobFromFinished(v any) (Job, error) {
	vals, ok := v.([]any)
	if !ok || len(vals) != len(finishedFields) {
		return Job{}, fmt.Errorf("decoding finished job: reply is %T of %d values, want %d", v, len(vals), len(finishedFields))
	}
	h := make(map[string]string, len(finishedFields)+1)
	for i, f := range finishedFields {
		h[f], _ = vals[i].(string)
	}
	h["state"] = h["outcome"]
	return jobFromHash(h)
}

func jobFromHash(h map[string]string) (Job, error) {
	if h["id"] == "" {
		return Job{}, fmt.Errorf("decoding job: hash has no id")
	}
	if why := h[unreadableField]; why != "" {
		return Job{}, fmt.Errorf("decoding job %s: its key cannot be read as a hash: %s", h["id"], phone.MaskText(why))
	}
	j := Job{
		ID: h["id"], Queue: h["queue"], Number: h["number"], Name: h["name"],
		Target: h["target"], Owner: h["owner"], State: State(h["state"]),
		Outcome: State(h["outcome"]), Note: h["note"], AtRiskFromStart: h["at_risk_from_start"] == "1",
		ExternalRef: h["external_ref"],
		Source:      Source{AsteriskID: h["src_asterisk"], LinkedID: h["src_linkedid"], Channel: h["src_channel"]},
	}
	if j.Outcome == "" && j.State.valid() && !j.State.Open() {
		// A finished job's outcome is its state (finish in common.lua writes no outcome field).
		j.Outcome = j.State
	}
	var err error
	// What a broken field holds is quoted (strconv and the history decoders quote the value),
	// and these errors are logged and answered: any number in them is masked.
	fail := func(field string, e error) error {
		return fmt.Errorf("decoding job %s field %s: %w", j.ID, phone.MaskText(field), maskedError{e})
	}
	var attempts, maxAttempts, token, heardToken int64
	for field, dst := range map[string]*int64{"attempts": &attempts, "max_attempts": &maxAttempts, "token": &token,
		"heard_token": &heardToken} {
		if *dst, err = parseInt(h[field]); err != nil {
			return Job{}, fail(field, err)
		}
	}
	j.Attempts, j.MaxAttempts, j.Lease.Token = int(attempts), int(maxAttempts), token
	j.Lease.First = h["first_claim"] == "1"
	times := []struct {
		field string
		dst   *time.Time
	}{
		{"created", &j.Created}, {"not_before", &j.NotBefore}, {"deadline", &j.Deadline},
		{"lease_expires", &j.Lease.Expires}, {"dialled", &j.DialledAt}, {"connected", &j.ConnectedAt}, {"finished", &j.FinishedAt},
		{"hold_until", &j.HoldUntil}, {"heard_at", &j.Lease.Heard},
	}
	for _, f := range times {
		if *f.dst, err = parseMillis(h[f.field]); err != nil {
			return Job{}, fail(f.field, err)
		}
	}
	if token == 0 || heardToken != token {
		j.Lease.Heard = time.Time{} // an earlier claim's witness says nothing of this one
	}
	j.Lease.Worker = h["worker"]
	if err := decodeList(h["reasons"], &j.Reasons); err != nil {
		return Job{}, fail("reasons", err)
	}
	if err := decodeList(h["targets"], &j.Targets); err != nil {
		return Job{}, fail("targets", err)
	}
	// A job written before the history had a key of its own keeps its first entries in the
	// hash's history field; the later ones follow in the list.
	var hist []historyEntry
	if err := decodeList(h["history"], &hist); err != nil {
		return Job{}, fail("history", err)
	}
	for _, e := range hist {
		j.History = append(j.History, Attempt{At: time.UnixMilli(int64(e.At)).UTC(), Result: e.Result, Detail: e.Detail})
	}
	var list []json.RawMessage
	if err := decodeList(h[historyListField], &list); err != nil {
		return Job{}, fail("history", err)
	}
	for _, raw := range list {
		a, err := decodeAttempt(raw)
		if err != nil {
			return Job{}, fail("history", err)
		}
		j.History = append(j.History, a)
	}
	// A job made since then keeps its history in the hash itself, one field h:<n> per entry.
	type numbered struct {
		n   int
		raw string
	}
	var entries []numbered
	for field, v := range h {
		rest, ok := strings.CutPrefix(field, historyFieldPrefix)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil {
			return Job{}, fail(field, err)
		}
		entries = append(entries, numbered{n, v})
	}
	slices.SortFunc(entries, func(a, b numbered) int { return a.n - b.n })
	for _, e := range entries {
		a, err := decodeHistoryField(e.raw)
		if err != nil {
			return Job{}, fail(historyFieldPrefix+strconv.Itoa(e.n), err)
		}
		j.History = append(j.History, a)
	}
	return j, nil
}

// unreadableField is what list.lua and page.lua answer, beside the id, for a job whose key is
// not a hash: what Redis said (listed_answer in common.lua).
const unreadableField = "unreadable"

// maskedError is err with every phone number in its text masked (phone.MaskText); it still
// wraps err.
type maskedError struct{ err error }

func (e maskedError) Error() string { return phone.MaskText(e.err.Error()) }
func (e maskedError) Unwrap() error { return e.err }

// historyFieldPrefix starts the job hash's history fields: h:1, h:2, ... (see common.lua).
const historyFieldPrefix = "h:"

// decodeHistoryField reads one history field: "<at ms>|<result>" or "<at ms>|<result>|<detail>",
// the detail being everything after the second '|'.
func decodeHistoryField(v string) (Attempt, error) {
	at, rest, ok := strings.Cut(v, "|")
	if !ok {
		return Attempt{}, fmt.Errorf("entry %q is not at|result|detail", v)
	}
	ms, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return Attempt{}, fmt.Errorf("entry %q: time: %w", v, err)
	}
	result, detail, _ := strings.Cut(rest, "|")
	if result == "" {
		return Attempt{}, fmt.Errorf("entry %q has no result", v)
	}
	return Attempt{At: time.UnixMilli(ms).UTC(), Result: result, Detail: detail}, nil
}

// historyListField is where a script's answer (and Get) puts the history list, as one JSON
// array of its entries.
const historyListField = "history_list"

// decodeAttempt reads one entry of the history list: [at ms, result] or [at ms, result, detail].
func decodeAttempt(raw json.RawMessage) (Attempt, error) {
	var e []any
	if err := json.Unmarshal(raw, &e); err != nil {
		return Attempt{}, err
	}
	if len(e) < 2 || len(e) > 3 {
		return Attempt{}, fmt.Errorf("entry %s is not [at, result, detail]", raw)
	}
	at, ok := e[0].(float64)
	result, ok2 := e[1].(string)
	if !ok || !ok2 {
		return Attempt{}, fmt.Errorf("entry %s is not [at, result, detail]", raw)
	}
	a := Attempt{At: time.UnixMilli(int64(at)).UTC(), Result: result}
	if len(e) == 3 {
		if a.Detail, ok = e[2].(string); !ok {
			return Attempt{}, fmt.Errorf("entry %s has a detail that is not text", raw)
		}
	}
	return a, nil
}

// decodeList reads a JSON array field. Lua's cjson writes an empty array as "{}".
func decodeList(raw string, dst any) error {
	if raw == "" || raw == "{}" || raw == "[]" {
		return nil
	}
	return json.Unmarshal([]byte(raw), dst)
}

func parseInt(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	// Lua may write a whole number through a float formatter ("1.7e+12"), so fall back to it.
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return int64(f), nil
}

func parseMillis(s string) (time.Time, error) {
	ms, err := parseInt(s)
	if err != nil || ms == 0 {
		return time.Time{}, err
	}
	return time.UnixMilli(ms).UTC(), nil
}

func millis(t time.Time) int64 { return t.UnixMilli() }
