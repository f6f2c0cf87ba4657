package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/callbackd/callbackd/internal/phone"
)

// Request asks for a callback promise.
type Request struct {
	Queue  string
	Number string // any form phone.ParseE164 accepts; stored as E.164
	Name   string
	Reason Reason
	Target string // extension, mailbox or queue the customer tried to reach; may be empty
	// Deadline is the promised time; it must be in the future.
	Deadline time.Time
	// NotBefore is when dialling may start; zero means now. It must be before Deadline.
	NotBefore   time.Time
	MaxAttempts int
	Source      Source
	Note        string
	// HoldUntil ends the owner's preference window (zero: the claim's PreferShare of the
	// promise's wall time); it must not be after Deadline.
	HoldUntil time.Time
	// AtRiskFromStart records that the forecast said, when it was made, that the deadline
	// would be missed: the promise is made anyway, and flagged.
	AtRiskFromStart bool
	// ExternalRef is the caller's own reference for the promise (a CRM ticket); a merge
	// keeps the first one given.
	ExternalRef string
	// OncePerCall says the request is what the call named by Source owes when it ended (the
	// detector's): the first such request for that call, reason and target is stored, any
	// later one is a Duplicate. Several daemons watching one Asterisk, or one restarted
	// mid-call, end the same call more than once; it still makes one promise.
	OncePerCall bool
}

// EnqueueResult says what Enqueue did.
type EnqueueResult struct {
	// Merged is true when the number already had an open promise in the queue and the request
	// was folded into it (earliest deadline kept, reason and target recorded) instead of
	// opening a second one. The returned Job is then that promise, with its original id.
	Merged bool
	// Duplicate is true, for a request OncePerCall, when its call already asked this —
	// the same reason and target — of this queue: another daemon watching the same Asterisk
	// made the promise, or this one did before a restart. Nothing was changed; the Job is the
	// promise made then (only its id and queue when it is no longer stored).
	Duplicate bool
}

// Enqueue makes a promise, or merges the request into the number's open promise in the queue.
// One round trip. Bad input is refused before anything is written.
func (s *Store) Enqueue(ctx context.Context, r Request) (Job, EnqueueResult, error) {
	now := s.clk.Now()
	number, err := s.checkRequest(r, now)
	if err != nil {
		return Job{}, EnqueueResult{}, fmt.Errorf("enqueueing callback for %s: %w", phone.Mask(r.Number), err)
	}
	id, err := newID(now)
	if err != nil {
		return Job{}, EnqueueResult{}, err
	}
	nb := r.NotBefore
	if nb.IsZero() {
		nb = now
	}
	k := s.ks(r.Queue)
	fromCall := ""
	if r.OncePerCall && r.Source.AsteriskID != "" && r.Source.LinkedID != "" {
		fromCall = r.Source.AsteriskID + ":" + r.Source.LinkedID
	}
	args := []any{id, number, string(r.Reason), r.Target, millis(nb), millis(r.Deadline), r.MaxAttempts,
		(s.maxAge[r.Queue] + s.retention).Milliseconds(), (s.maxAge[r.Queue] + dedupeOutlives).Milliseconds(), fromCall}
	// The optional fields go only when set, named as in the job hash (enqueue.lua).
	for _, f := range []struct{ name, value string }{
		{"name", r.Name}, {"src_asterisk", r.Source.AsteriskID}, {"src_linkedid", r.Source.LinkedID},
		{"src_channel", r.Source.Channel}, {"note", r.Note}, {"at_risk_from_start", flag(r.AtRiskFromStart)},
		{"external_ref", r.ExternalRef}, {"hold_until", holdField(r.HoldUntil)},
	} {
		if f.value != "" {
			args = append(args, f.name, f.value)
		}
	}
	res, acked, err := s.runReplicated(ctx, s.sc.enqueue, r.Queue, k.common(k.dedupe(number), k.job(id)), now, args...)
	what := fmt.Sprintf("enqueueing callback for %s in queue %s", phone.Mask(number), r.Queue)
	if err != nil {
		return Job{}, EnqueueResult{}, fmt.Errorf("%s: %w", what, err)
	}
	if res[0] == "duplicate" {
		if made, ok := res[1].(string); ok {
			return Job{ID: made, Queue: r.Queue}, EnqueueResult{Duplicate: true}, nil
		}
		res[0] = "ok"
		j, err := jobResult(res, what)
		return j, EnqueueResult{Duplicate: true}, err
	}
	if res[0] == "ok" {
		j := madeJob(id, number, r, now, nb)
		s.replicated(WriteEnqueue, j.Ref(), acked)
		return j, EnqueueResult{}, nil
	}
	merged := res[0] == "merged"
	if merged {
		res[0] = "ok"
	}
	j, err := jobResult(res, what)
	if err == nil {
		s.replicated(WriteEnqueue, j.Ref(), acked)
	}
	return j, EnqueueResult{Merged: merged}, err
}

// madeJob is the new promise enqueue.lua writes for request r (number: r's, normalised), built
// from what the script was sent rather than decoded from a reply: the same Job Get reads back
// (TestEnqueueAnswersWhatGetReads), times at the millisecond precision they are stored with.
func madeJob(id, number string, r Request, now, nb time.Time) Job {
	ms := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return time.UnixMilli(millis(t)).UTC()
	}
	j := Job{ID: id, Queue: r.Queue, Number: number, Name: r.Name, Reasons: []Reason{r.Reason},
		Target: r.Target, Owner: r.Target, Created: ms(now), NotBefore: ms(nb), Deadline: ms(r.Deadline),
		MaxAttempts: r.MaxAttempts, State: StatePending, Source: r.Source, Note: r.Note,
		HoldUntil: ms(r.HoldUntil), AtRiskFromStart: r.AtRiskFromStart, ExternalRef: r.ExternalRef}
	if r.Target != "" {
		j.Targets = []string{r.Target}
	}
	return j
}

func (s *Store) checkRequest(r Request, now time.Time) (string, error) {
	if err := s.checkQueue(r.Queue); err != nil {
		return "", err
	}
	number, err := phone.ParseE164(r.Number)
	if err != nil {
		return "", fmt.Errorf("%w: customer number: %w", ErrInvalid, err)
	}
	if !r.Reason.valid() {
		return "", fmt.Errorf("%w: reason %q is not one of %v", ErrInvalid, r.Reason, Reasons())
	}
	for _, f := range []struct{ name, v string }{
		{"name", r.Name}, {"target", r.Target}, {"note", r.Note}, {"source asterisk id", r.Source.AsteriskID},
		{"source linkedid", r.Source.LinkedID}, {"source channel", r.Source.Channel}, {"external ref", r.ExternalRef},
	} {
		if err := CheckText(f.name, f.v); err != nil {
			return "", err
		}
	}
	if r.Deadline.IsZero() {
		return "", fmt.Errorf("%w: no deadline", ErrInvalid)
	}
	if !r.Deadline.After(now) {
		return "", fmt.Errorf("%w: deadline %s is not after now (%s)", ErrInvalid,
			r.Deadline.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !r.NotBefore.IsZero() && !r.NotBefore.Before(r.Deadline) {
		return "", fmt.Errorf("%w: not-before %s is not before the deadline %s", ErrInvalid,
			r.NotBefore.UTC().Format(time.RFC3339), r.Deadline.UTC().Format(time.RFC3339))
	}
	if r.HoldUntil.After(r.Deadline) {
		return "", fmt.Errorf("%w: hold-until %s is after the deadline %s", ErrInvalid,
			r.HoldUntil.UTC().Format(time.RFC3339), r.Deadline.UTC().Format(time.RFC3339))
	}
	if r.MaxAttempts < 1 || r.MaxAttempts > maxAttempts {
		return "", fmt.Errorf("%w: max attempts %d must be between 1 and %d", ErrInvalid, r.MaxAttempts, maxAttempts)
	}
	return number, nil
}

// ClaimOptions says who claims and for how long.
type ClaimOptions struct {
	// Worker names the claimer in the job's lease and history.
	Worker string
	// Lease is how long the claim holds without Extend; after that Reclaim hands the job back.
	Lease time.Duration
	// Prefer is a target (the agent's extension): among the earliest due jobs, one whose targets
	// include Prefer is taken before an earlier job for someone else, while its preference
	// window runs. Empty: strictly earliest deadline first.
	Prefer string
	// PreferShare is the share of each job's life (created → deadline) during which it is
	// preferred for its own target; zero means until the deadline.
	PreferShare float64
	// Held are owners (agent extensions) other than the claimer whose jobs are left to them:
	// a due job whose Owner is in Held is skipped while its preference window (PreferShare)
	// runs, so that the customer is called back by the person they tried to reach when that
	// person is busy for now rather than absent. A job naming Prefer among its targets is the
	// claimer's own and is never skipped. Only the earliest due jobs are looked at (the same
	// bound as for Prefer); when all of them are held, Claim fails with an *EmptyError saying
	// when the first hold ends (see HoldEnds).
	Held []string
}

// Claim leases the due job with the earliest deadline (see ClaimOptions.Prefer and Held) and
// returns it in state dialing with a fresh fencing token. Delayed jobs whose not-before has come
// are made due inside the same script, so no forwarder is needed. When nothing is due it returns
// (nil, error wrapping ErrEmpty); NextDue says when to try again, or HoldEnds when the due jobs
// were all left to their owners. One round trip. The Job is complete but for its History,
// which the claimer does not need: Get reads it.
func (s *Store) Claim(ctx context.Context, queue string, o ClaimOptions) (*Job, error) {
	what := "claiming a job from queue " + queue
	if err := s.checkQueue(queue); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := CheckText("worker", o.Worker); err != nil || o.Worker == "" {
		if err == nil {
			err = fmt.Errorf("%w: no worker name", ErrInvalid)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkLease(o.Lease); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := CheckText("prefer", o.Prefer); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !(o.PreferShare >= 0 && o.PreferShare <= 1) {
		return nil, fmt.Errorf("%s: %w: prefer share %v must be between 0 and 1", what, ErrInvalid, o.PreferShare)
	}
	if len(o.Held) > maxHeld {
		return nil, fmt.Errorf("%s: %w: %d held owners, at most %d allowed", what, ErrInvalid, len(o.Held), maxHeld)
	}
	// args[1], the lease's expiry, is set for each call from its now: now's milliseconds and the
	// lease's, as extend.lua adds them.
	args := []any{o.Worker, int64(0), o.Prefer, o.PreferShare}
	for _, h := range o.Held {
		// An empty owner is a job without one; holding it would hold every such job for nobody.
		if err := CheckText("held owner", h); err != nil || h == "" {
			if err == nil {
				err = fmt.Errorf("%w: empty held owner", ErrInvalid)
			}
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		args = append(args, h)
	}
	k := s.ks(queue)
	for {
		now := s.clk.Now()
		args[1] = millis(now) + o.Lease.Milliseconds()
		res, err := s.run(ctx, s.sc.claim, queue, k.common(k.quarantine()), now, args...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if status, _ := res[0].(string); status == "err" {
			if len(res) > 3 {
				s.quarantined(queue, res[3])
			}
			return nil, scriptError(res, what)
		}
		if len(res) > 2 {
			s.quarantined(queue, res[2])
		}
		h, err := claimedHash(res, queue)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		j, err := jobFromHash(h)
		if err == nil {
			return &j, nil
		}
		err = fmt.Errorf("%s: %w", what, err)
		// The script leased a job whose fields it could read but Go cannot: set it aside
		// and claim again, so one bad record never blocks the queue.
		id := h["id"]
		if id == "" {
			return nil, err
		}
		if _, qerr := s.run(ctx, s.sc.quarantine, queue, k.common(k.quarantine()), s.clk.Now(), id, err.Error()); qerr != nil {
			return nil, fmt.Errorf("%s: quarantining undecodable job %s: %w", what, id, qerr)
		}
		s.quarantined(queue, []any{id, err.Error()})
	}
}

// claimFields are the job fields claim.lua answers the values of, in its order (its HMGET);
// after them it answers first_claim, the worker and the lease expiry.
var claimFields = []string{"id", "number", "created", "deadline", "not_before", "attempts", "max_attempts",
	"reasons", "targets", "history", "token", "hn", "name", "target", "owner", "note", "at_risk_from_start",
	"external_ref", "src_asterisk", "src_linkedid", "src_channel", "hold_until"}

// claimedHash turns claim.lua's reply into the hash of the job as the claim left it: the
// values it answered under their names, and what every claim writes (state dialing, no
// dial or connect yet) or the claimer knows (the queue).
func claimedHash(res []any, queue string) (map[string]string, error) {
	if len(res) < 2 {
		return nil, fmt.Errorf("claim reply has no job")
	}
	vals, ok := res[1].([]any)
	if !ok || len(vals) != len(claimFields)+3 {
		return nil, fmt.Errorf("claim reply holds %T of %d values; want %d", res[1], len(vals), len(claimFields)+3)
	}
	h := make(map[string]string, len(claimFields)+7)
	for i, f := range claimFields {
		if v, ok := vals[i].(string); ok {
			h[f] = v
		}
	}
	n := len(claimFields)
	for i, f := range []string{"first_claim", "worker", "lease_expires"} {
		v, _ := vals[n+i].(string)
		h[f] = v
	}
	h["queue"], h["state"], h["dialled"], h["connected"] = queue, string(StateDialing), "0", "0"
	// A claimer has no use for the history (the script reads it only to check it).
	delete(h, "history")
	return h, nil
}

func checkLease(d time.Duration) error {
	if d < time.Millisecond || d > maxLease {
		return fmt.Errorf("%w: lease %v must be between 1ms and %v", ErrInvalid, d, maxLease)
	}
	return nil
}

func checkToken(token int64) error {
	if token <= 0 {
		return fmt.Errorf("%w: fencing token %d: tokens are positive", ErrInvalid, token)
	}
	return nil
}

// fencedCall runs a script whose KEYS are the common ones plus the job key and whose ARGV
// start with the job id and the fencing token.
func (s *Store) fencedCall(ctx context.Context, sc *script, ref Ref, token int64, what string, args ...any) (Job, error) {
	return s.fencedWrite(ctx, "", sc, ref, token, what, args...)
}

// fencedWrite is fencedCall for one of the writes Options.WaitReplicas applies to ("": none).
func (s *Store) fencedWrite(ctx context.Context, write string, sc *script, ref Ref, token int64, what string, args ...any) (Job, error) {
	what = fmt.Sprintf("%s job %s in queue %s", what, ref.ID, ref.Queue)
	if err := s.checkRef(ref); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkToken(token); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	k := s.ks(ref.Queue)
	keys, argv := k.common(k.job(ref.ID)), append([]any{ref.ID, token}, args...)
	if write == "" {
		res, err := s.run(ctx, sc, ref.Queue, keys, s.clk.Now(), argv...)
		if err != nil {
			return Job{}, fmt.Errorf("%s: %w", what, err)
		}
		return jobResult(res, what)
	}
	res, acked, err := s.runReplicated(ctx, sc, ref.Queue, keys, s.clk.Now(), argv...)
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	j, err := jobResult(res, what)
	if err == nil {
		s.replicated(write, ref, acked)
	}
	return j, err
}

// Extend moves the lease's expiry to now + d. Fenced. A lease that ran out but was not yet
// reclaimed can still be extended: the token, not the clock, decides who owns the job. The
// returned Job holds only ID, Queue, State and Lease (Token, Expires); the rest is zero.
func (s *Store) Extend(ctx context.Context, ref Ref, token int64, d time.Duration) (Job, error) {
	if err := checkLease(d); err != nil {
		return Job{}, fmt.Errorf("extending lease of job %s: %w", ref.ID, err)
	}
	return s.fencedCall(ctx, s.sc.extend, ref, token, "extending lease of", d.Milliseconds())
}

// MarkDialled records that the claim is about to ring the customer: call it before the customer
// leg is created. From then on an expired lease costs the customer an attempt; before it,
// Reclaim gives the promise back without one (only the agent can have been rung). Fenced.
// The returned Job holds only ID, Queue, Number, State, Attempts, DialledAt and Lease (Token,
// Worker); the rest is zero.
func (s *Store) MarkDialled(ctx context.Context, ref Ref, token int64) (Job, error) {
	return s.fencedCall(ctx, s.sc.dialled, ref, token, "marking the customer dialled for")
}

// MarkConnected records that the customer answered at at (dialing → connected). Fenced. The
// returned Job holds only ID, Queue, Number, State, ConnectedAt and Lease (Token, Worker); the
// rest is zero.
func (s *Store) MarkConnected(ctx context.Context, ref Ref, token int64, at time.Time) (Job, error) {
	if at.IsZero() {
		return Job{}, fmt.Errorf("marking job %s connected: %w: no connect time", ref.ID, ErrInvalid)
	}
	return s.fencedWrite(ctx, WriteConnected, s.sc.connected, ref, token, "marking connected", millis(at), "")
}

// MarkAdopted records that the customer of claim token, whose worker is gone, talks to the
// agent: a janitor saw the claim's legs answered and bridged. A claim still leased becomes
// connected; one whose lease ran out and that Reclaim handed back (no claim since) gets its
// attempt back and is leased, connected, to worker for lease. Its lease expiry then finishes
// it kept or late by at. A promise claimed again since is ErrStaleToken; one finished,
// ErrWrongState. The returned Job holds only ID, Queue, Number, State, ConnectedAt and Lease;
// the rest is zero.
func (s *Store) MarkAdopted(ctx context.Context, ref Ref, token int64, at time.Time, worker string, lease time.Duration) (Job, error) {
	what := "recording the adopted conversation of job " + ref.ID
	if at.IsZero() {
		return Job{}, fmt.Errorf("%s: %w: no connect time", what, ErrInvalid)
	}
	if err := CheckText("worker", worker); err != nil || worker == "" {
		if err == nil {
			err = fmt.Errorf("%w: no worker name", ErrInvalid)
		}
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkLease(lease); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	return s.fencedWrite(ctx, WriteAdopted, s.sc.adopted, ref, token, "recording the adopted conversation", millis(at), worker, lease.Milliseconds())
}

// MarkHeard records that the customer of claim token answered — heard at at by a daemon other
// than the claim's (its janitor hears every callback leg through the monitor application) —
// before the claim wrote its connect. Nothing else changes: a live claim writes its connect
// itself. If its daemon dies first, the lease expiry finishes the promise kept or late by at
// (Reclaim), so a witness that dies too loses nothing. Fenced by the heard claim's token: a
// claim no longer current is ErrStaleToken, one connected or finished ErrWrongState. The
// returned Job holds only ID, Queue, State and Lease.Token.
func (s *Store) MarkHeard(ctx context.Context, ref Ref, token int64, at time.Time) (Job, error) {
	if at.IsZero() {
		return Job{}, fmt.Errorf("recording the heard answer of job %s: %w: no time", ref.ID, ErrInvalid)
	}
	return s.fencedCall(ctx, s.sc.heard, ref, token, "recording the heard answer of", millis(at))
}

// Every detail is stored through phone.MaskText: details quote what Asterisk said, and that
// can be a dial string with the customer's number in it, which nobody reading the history
// (promises --json, the event stream) needs in full.

// Complete finishes a leased job with outcome. kept and late need a connected job and must
// agree with its connect time and deadline (else ErrOutcome); unreachable, failed, expired,
// cancelled and resolved are accepted from dialing or connected. Fenced; one round trip.
// The returned Job holds what a caller settling a callback reads — ID, Queue, Number, State,
// Outcome, Reasons, Target, Created, NotBefore, Deadline, Attempts, MaxAttempts, ConnectedAt,
// FinishedAt, Lease.Worker — and the rest is zero (no History, Name, Source…): Get reads the
// whole promise.
func (s *Store) Complete(ctx context.Context, ref Ref, token int64, outcome State, detail string) (Job, error) {
	switch outcome {
	case StateKept, StateLate, StateUnreachable, StateFailed, StateExpired, StateCancelled, StateResolved:
	default:
		return Job{}, fmt.Errorf("completing job %s: %w: %q is not a final outcome", ref.ID, ErrInvalid, outcome)
	}
	if err := CheckText("detail", detail); err != nil {
		return Job{}, fmt.Errorf("completing job %s: %w", ref.ID, err)
	}
	return s.fencedCall(ctx, s.sc.complete, ref, token, "completing", string(outcome), phone.MaskText(detail))
}

// Retry hands a leased job back after a failed dial of the customer: one attempt is used, and
// the job is due again at notBefore. When that was the last attempt the job is finished as
// unreachable instead; the returned Job's State says which. Fenced. The returned Job holds the
// fields Complete's does (the Lease cleared when pending again); the rest is zero.
func (s *Store) Retry(ctx context.Context, ref Ref, token int64, notBefore time.Time, detail string) (Job, error) {
	return s.giveBack(ctx, ref, token, notBefore, detail, true)
}

// Release hands a leased job back without using an attempt, for when the customer was never
// dialled (the agent did not answer, calling hours closed). Fenced. The returned Job is as
// Retry's.
func (s *Store) Release(ctx context.Context, ref Ref, token int64, notBefore time.Time, detail string) (Job, error) {
	return s.giveBack(ctx, ref, token, notBefore, detail, false)
}

func (s *Store) giveBack(ctx context.Context, ref Ref, token int64, notBefore time.Time, detail string, charge bool) (Job, error) {
	what := "retrying"
	if !charge {
		what = "releasing"
	}
	if notBefore.IsZero() {
		notBefore = s.clk.Now()
	}
	if err := CheckText("detail", detail); err != nil {
		return Job{}, fmt.Errorf("%s job %s: %w", what, ref.ID, err)
	}
	flag := "0"
	if charge {
		flag = "1"
	}
	return s.fencedCall(ctx, s.sc.retry, ref, token, what, millis(notBefore), phone.MaskText(detail), flag)
}

// Cancel withdraws an open promise, even one being dialled (its worker's token then fails).
func (s *Store) Cancel(ctx context.Context, ref Ref, detail string) (Job, error) {
	what := fmt.Sprintf("cancelling job %s in queue %s", ref.ID, ref.Queue)
	if err := s.checkRef(ref); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := CheckText("detail", detail); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	k := s.ks(ref.Queue)
	res, err := s.run(ctx, s.sc.cancel, ref.Queue, k.common(k.job(ref.ID)), s.clk.Now(), ref.ID, string(StateCancelled), phone.MaskText(detail))
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	return jobResult(res, what)
}

// Resolve closes the number's open promise in queue because the customer reached the business
// themselves. ErrNotFound when the number has no open promise there.
func (s *Store) Resolve(ctx context.Context, queue, number, detail string) (Job, error) {
	what := fmt.Sprintf("resolving callback for %s in queue %s", phone.Mask(number), queue)
	if err := s.checkQueue(queue); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	n, err := phone.ParseE164(number)
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w: %w", what, ErrInvalid, err)
	}
	if err := CheckText("detail", detail); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	k := s.ks(queue)
	res, err := s.run(ctx, s.sc.resolve, queue, k.common(k.dedupe(n)), s.clk.Now(), phone.MaskText(detail))
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	return jobResult(res, what)
}

// ReclaimResult counts what Reclaim did.
type ReclaimResult struct {
	// Reclaimed is how many expired leases were taken back.
	Reclaimed int
	// GaveUp is how many of them were dialing on their last attempt and are now unreachable.
	GaveUp int
	// Kept and Late are how many of them were connected and are now finished so; Finished is
	// their sum.
	Kept, Late, Finished int
	// Released is how many were dialing without their customer dialled yet (MarkDialled): they
	// are pending again without an attempt used.
	Released int
}

// Reclaim takes back every job whose lease has expired. A dialing job whose customer was
// dialled (MarkDialled) is pending again (the lost call counts as an attempt) or, out of
// attempts, unreachable; one that had only rung its agent is pending again without an attempt. A connected job had its
// customer on the line, so it is finished as kept (connected no later than the deadline) or
// late rather than dialled a second time. The old token is refused from then on. Each expiry
// is handled exactly once, however many processes call Reclaim.
func (s *Store) Reclaim(ctx context.Context, queue string) (ReclaimResult, error) {
	return s.ReclaimExcept(ctx, queue, nil)
}

// ReclaimExcept is Reclaim leaving alone the expired leases of the jobs in held: those the
// caller runs a callback for itself. Their lease ran out because Redis was unreachable, not
// because their holder died; taking one back would re-queue a promise whose customer may be
// talking to an agent right now, before its callback could write the connect. The callback
// renews the lease (or settles the promise) once Redis answers again.
func (s *Store) ReclaimExcept(ctx context.Context, queue string, held []string) (ReclaimResult, error) {
	what := "reclaiming expired leases in queue " + queue
	if err := s.checkQueue(queue); err != nil {
		return ReclaimResult{}, fmt.Errorf("%s: %w", what, err)
	}
	var total ReclaimResult
	k := s.ks(queue)
	for {
		args := []any{reclaimBatch}
		for _, id := range held {
			args = append(args, id)
		}
		res, err := s.run(ctx, s.sc.reclaim, queue, k.common(k.quarantine()), s.clk.Now(), args...)
		if err != nil {
			return total, fmt.Errorf("%s: %w", what, err)
		}
		if len(res) < 5 {
			return total, fmt.Errorf("%s: unexpected reply %v", what, res)
		}
		n, _ := res[1].(int64)
		g, _ := res[2].(int64)
		kept, _ := res[3].(int64)
		late, _ := res[4].(int64)
		if len(res) > 5 {
			s.quarantined(queue, res[5])
		}
		if len(res) > 6 {
			released, _ := res[6].(int64)
			total.Released += int(released)
		}
		total.Reclaimed += int(n)
		total.GaveUp += int(g)
		total.Kept += int(kept)
		total.Late += int(late)
		total.Finished += int(kept + late)
		if n < reclaimBatch {
			return total, nil
		}
	}
}

func holdMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return millis(t)
}

// holdField is a hold-until time as the job hash keeps it: "" for none.
func holdField(t time.Time) string {
	if ms := holdMillis(t); ms != 0 {
		return strconv.FormatInt(ms, 10)
	}
	return ""
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return ""
}
