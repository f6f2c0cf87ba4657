package queue

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

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
}

// EnqueueResult says what Enqueue did.
type EnqueueResult struct {
	// Merged is true when the number already had an open promise in the queue and the request
	// was folded into it (earliest deadline kept, reason and target recorded) instead of
	// opening a second one. The returned Job is then that promise, with its original id.
	Merged bool
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
	res, err := s.run(ctx, s.sc.enqueue, r.Queue, k.common(k.dedupe(number), k.job(id)), now,
		id, number, r.Name, string(r.Reason), r.Target, millis(nb), millis(r.Deadline), r.MaxAttempts,
		r.Source.AsteriskID, r.Source.LinkedID, r.Source.Channel, r.Note)
	what := fmt.Sprintf("enqueueing callback for %s in queue %s", phone.Mask(number), r.Queue)
	if err != nil {
		return Job{}, EnqueueResult{}, fmt.Errorf("%s: %w", what, err)
	}
	merged := res[0] == "merged"
	if merged {
		res[0] = "ok"
	}
	j, err := jobResult(res, what)
	return j, EnqueueResult{Merged: merged}, err
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
		{"source linkedid", r.Source.LinkedID}, {"source channel", r.Source.Channel},
	} {
		if err := checkText(f.name, f.v); err != nil {
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
// were all left to their owners. One round trip.
func (s *Store) Claim(ctx context.Context, queue string, o ClaimOptions) (*Job, error) {
	what := "claiming a job from queue " + queue
	if err := s.checkQueue(queue); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkText("worker", o.Worker); err != nil || o.Worker == "" {
		if err == nil {
			err = fmt.Errorf("%w: no worker name", ErrInvalid)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkLease(o.Lease); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkText("prefer", o.Prefer); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !(o.PreferShare >= 0 && o.PreferShare <= 1) {
		return nil, fmt.Errorf("%s: %w: prefer share %v must be between 0 and 1", what, ErrInvalid, o.PreferShare)
	}
	if len(o.Held) > maxHeld {
		return nil, fmt.Errorf("%s: %w: %d held owners, at most %d allowed", what, ErrInvalid, len(o.Held), maxHeld)
	}
	args := []any{o.Worker, o.Lease.Milliseconds(), o.Prefer, o.PreferShare, promoteBatch, preferWindow}
	for _, h := range o.Held {
		// An empty owner is a job without one; holding it would hold every such job for nobody.
		if err := checkText("held owner", h); err != nil || h == "" {
			if err == nil {
				err = fmt.Errorf("%w: empty held owner", ErrInvalid)
			}
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		args = append(args, h)
	}
	k := s.ks(queue)
	res, err := s.run(ctx, s.sc.claim, queue, k.common(), s.clk.Now(), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	j, err := jobResult(res, what)
	if err != nil {
		return nil, err
	}
	return &j, nil
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
func (s *Store) fencedCall(ctx context.Context, sc *redis.Script, ref Ref, token int64, what string, args ...any) (Job, error) {
	what = fmt.Sprintf("%s job %s in queue %s", what, ref.ID, ref.Queue)
	if err := s.checkRef(ref); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkToken(token); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	k := s.ks(ref.Queue)
	res, err := s.run(ctx, sc, ref.Queue, k.common(k.job(ref.ID)), s.clk.Now(), append([]any{ref.ID, token}, args...)...)
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	return jobResult(res, what)
}

// Extend moves the lease's expiry to now + d. Fenced. A lease that ran out but was not yet
// reclaimed can still be extended: the token, not the clock, decides who owns the job.
func (s *Store) Extend(ctx context.Context, ref Ref, token int64, d time.Duration) (Job, error) {
	if err := checkLease(d); err != nil {
		return Job{}, fmt.Errorf("extending lease of job %s: %w", ref.ID, err)
	}
	return s.fencedCall(ctx, s.sc.extend, ref, token, "extending lease of", d.Milliseconds())
}

// MarkConnected records that the customer answered at at (dialing → connected). Fenced.
func (s *Store) MarkConnected(ctx context.Context, ref Ref, token int64, at time.Time) (Job, error) {
	if at.IsZero() {
		return Job{}, fmt.Errorf("marking job %s connected: %w: no connect time", ref.ID, ErrInvalid)
	}
	return s.fencedCall(ctx, s.sc.connected, ref, token, "marking connected", millis(at), "")
}

// Complete finishes a leased job with outcome. kept and late need a connected job and must
// agree with its connect time and deadline (else ErrOutcome); unreachable, failed, expired,
// cancelled and resolved are accepted from dialing or connected. Fenced; one round trip.
func (s *Store) Complete(ctx context.Context, ref Ref, token int64, outcome State, detail string) (Job, error) {
	switch outcome {
	case StateKept, StateLate, StateUnreachable, StateFailed, StateExpired, StateCancelled, StateResolved:
	default:
		return Job{}, fmt.Errorf("completing job %s: %w: %q is not a final outcome", ref.ID, ErrInvalid, outcome)
	}
	if err := checkText("detail", detail); err != nil {
		return Job{}, fmt.Errorf("completing job %s: %w", ref.ID, err)
	}
	return s.fencedCall(ctx, s.sc.complete, ref, token, "completing", string(outcome), detail)
}

// Retry hands a leased job back after a failed dial of the customer: one attempt is used, and
// the job is due again at notBefore. When that was the last attempt the job is finished as
// unreachable instead; the returned Job's State says which. Fenced.
func (s *Store) Retry(ctx context.Context, ref Ref, token int64, notBefore time.Time, detail string) (Job, error) {
	return s.giveBack(ctx, ref, token, notBefore, detail, true)
}

// Release hands a leased job back without using an attempt, for when the customer was never
// dialled (the agent did not answer, calling hours closed). Fenced.
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
	if err := checkText("detail", detail); err != nil {
		return Job{}, fmt.Errorf("%s job %s: %w", what, ref.ID, err)
	}
	flag := "0"
	if charge {
		flag = "1"
	}
	return s.fencedCall(ctx, s.sc.retry, ref, token, what, millis(notBefore), detail, flag)
}

// Cancel withdraws an open promise, even one being dialled (its worker's token then fails).
func (s *Store) Cancel(ctx context.Context, ref Ref, detail string) (Job, error) {
	what := fmt.Sprintf("cancelling job %s in queue %s", ref.ID, ref.Queue)
	if err := s.checkRef(ref); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkText("detail", detail); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	k := s.ks(ref.Queue)
	res, err := s.run(ctx, s.sc.cancel, ref.Queue, k.common(k.job(ref.ID)), s.clk.Now(), ref.ID, string(StateCancelled), detail)
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
	if err := checkText("detail", detail); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	k := s.ks(queue)
	res, err := s.run(ctx, s.sc.resolve, queue, k.common(k.dedupe(n)), s.clk.Now(), detail)
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	return jobResult(res, what)
}

// Get reads a job, open or finished within the retention period.
func (s *Store) Get(ctx context.Context, ref Ref) (Job, error) {
	what := fmt.Sprintf("reading job %s in queue %s", ref.ID, ref.Queue)
	if err := s.checkRef(ref); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	h, err := s.rdb.HGetAll(ctx, s.ks(ref.Queue).job(ref.ID)).Result()
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	if len(h) == 0 {
		return Job{}, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	j, err := jobFromHash(h)
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	return j, nil
}

// ListOptions filters List.
type ListOptions struct {
	// States to include; all when empty.
	States []State
	// Limit is the most jobs returned: 100 when zero, at most 1000.
	Limit int
}

// List returns jobs of the queue in the given states, earliest deadline first. Open jobs come
// from the queue's sets; finished ones are the most recently finished still retained.
func (s *Store) List(ctx context.Context, queue string, o ListOptions) ([]Job, error) {
	what := "listing jobs of queue " + queue
	if err := s.checkQueue(queue); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if o.Limit == 0 {
		o.Limit = 100
	}
	if o.Limit < 0 || o.Limit > maxListLimit {
		return nil, fmt.Errorf("%s: %w: limit %d must be between 1 and %d", what, ErrInvalid, o.Limit, maxListLimit)
	}
	want := map[State]bool{}
	for _, st := range o.States {
		if !st.valid() {
			return nil, fmt.Errorf("%s: %w: unknown state %q", what, ErrInvalid, st)
		}
		want[st] = true
	}
	if len(want) == 0 {
		for _, st := range States() {
			want[st] = true
		}
	}
	var sets strings.Builder
	if want[StatePending] {
		sets.WriteString("rd")
	}
	if want[StateDialing] || want[StateConnected] {
		sets.WriteString("l")
	}
	for st := range want {
		if !st.Open() {
			sets.WriteString("f")
			break
		}
	}
	k := s.ks(queue)
	v, err := s.sc.list.Run(ctx, s.rdb, k.common(), millis(s.clk.Now()), s.retention.Milliseconds(), queue,
		sets.String(), o.Limit, listCap).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	rows, _ := v.([]any)
	jobs := make([]Job, 0, len(rows))
	for _, row := range rows {
		j, err := jobFromReply(row)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if want[j.State] {
			jobs = append(jobs, j)
		}
	}
	sort.SliceStable(jobs, func(a, b int) bool {
		if !jobs[a].Deadline.Equal(jobs[b].Deadline) {
			return jobs[a].Deadline.Before(jobs[b].Deadline)
		}
		return jobs[a].ID < jobs[b].ID
	})
	if len(jobs) > o.Limit {
		jobs = jobs[:o.Limit]
	}
	return jobs, nil
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
}

// Reclaim takes back every job whose lease has expired. A dialing job is pending again (the
// lost call counts as an attempt) or, out of attempts, unreachable. A connected job had its
// customer on the line, so it is finished as kept (connected no later than the deadline) or
// late rather than dialled a second time. The old token is refused from then on. Each expiry
// is handled exactly once, however many processes call Reclaim.
func (s *Store) Reclaim(ctx context.Context, queue string) (ReclaimResult, error) {
	what := "reclaiming expired leases in queue " + queue
	if err := s.checkQueue(queue); err != nil {
		return ReclaimResult{}, fmt.Errorf("%s: %w", what, err)
	}
	var total ReclaimResult
	k := s.ks(queue)
	for {
		res, err := s.run(ctx, s.sc.reclaim, queue, k.common(), s.clk.Now(), reclaimBatch)
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

// NextDue says when Claim will next find a job: now if one is due, the earliest not-before of
// the delayed jobs otherwise, and false when the queue has no pending job at all. It lets a
// dispatcher sleep until then instead of polling.
func (s *Store) NextDue(ctx context.Context, queue string) (time.Time, bool, error) {
	return s.earliest(ctx, queue, "finding the next due job", true)
}

// NextLeaseExpiry says when the earliest lease in the queue runs out, so Reclaim can be
// scheduled for then; false when no job is leased.
func (s *Store) NextLeaseExpiry(ctx context.Context, queue string) (time.Time, bool, error) {
	return s.earliest(ctx, queue, "finding the next lease expiry", false)
}

func (s *Store) earliest(ctx context.Context, queue, what string, due bool) (time.Time, bool, error) {
	what += " in queue " + queue
	if err := s.checkQueue(queue); err != nil {
		return time.Time{}, false, fmt.Errorf("%s: %w", what, err)
	}
	k := s.ks(queue)
	now := s.clk.Now()
	var ready *redis.IntCmd
	var first *redis.ZSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if due {
			ready = p.ZCard(ctx, k.ready())
			first = p.ZRangeWithScores(ctx, k.delayed(), 0, 0)
		} else {
			first = p.ZRangeWithScores(ctx, k.leases(), 0, 0)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s: %w", what, err)
	}
	if ready != nil && ready.Val() > 0 {
		return now, true, nil
	}
	if z := first.Val(); len(z) > 0 {
		t := time.UnixMilli(int64(z[0].Score)).UTC()
		if due && t.Before(now) {
			t = now
		}
		return t, true, nil
	}
	return time.Time{}, false, nil
}

// Stats is a cheap snapshot of a queue for metrics: set sizes and lifetime counters.
type Stats struct {
	Ready   int64 // pending and due
	Delayed int64 // pending, waiting for their not-before
	Leased  int64 // dialing or connected: always Dialing + Connected
	// Dialing and Connected split Leased: claimed and not yet through to the customer, and
	// with the customer on the line.
	Dialing, Connected int64
	// Retained is how many finished jobs are still readable.
	Retained int64
	// Made and Merged count promises opened and requests merged into open ones, ever.
	Made, Merged int64
	// Finished counts promises finished in each final state, ever.
	Finished map[State]int64
}

// Stats reads the queue's counters in one round trip, as one consistent snapshot. Of the jobs
// it reads only the leased ones' states (at most one per agent on a call).
func (s *Store) Stats(ctx context.Context, queue string) (Stats, error) {
	what := "reading stats of queue " + queue
	if err := s.checkQueue(queue); err != nil {
		return Stats{}, fmt.Errorf("%s: %w", what, err)
	}
	k := s.ks(queue)
	v, err := s.sc.stats.Run(ctx, s.rdb, k.common(), millis(s.clk.Now()), s.retention.Milliseconds(), queue).Result()
	if err != nil {
		return Stats{}, fmt.Errorf("%s: %w", what, err)
	}
	res, _ := v.([]any)
	if len(res) != 6 {
		return Stats{}, fmt.Errorf("%s: unexpected script reply %v", what, v)
	}
	var counts [5]int64
	for i := range counts {
		n, ok := res[i].(int64)
		if !ok {
			return Stats{}, fmt.Errorf("%s: unexpected script reply %v", what, v)
		}
		counts[i] = n
	}
	st := Stats{Ready: counts[0], Delayed: counts[1], Dialing: counts[2], Connected: counts[3],
		Leased: counts[2] + counts[3], Retained: counts[4], Finished: map[State]int64{}}
	totals, _ := res[5].([]any)
	for i := 0; i+1 < len(totals); i += 2 {
		f, _ := totals[i].(string)
		raw, _ := totals[i+1].(string)
		n, err := parseInt(raw)
		if err != nil {
			return Stats{}, fmt.Errorf("%s: counter %s: %w", what, f, err)
		}
		switch f {
		case "made":
			st.Made = n
		case "merged":
			st.Merged = n
		default:
			st.Finished[State(f)] = n
		}
	}
	return st, nil
}

// Outcomes counts the promises of queue that finished in each final state during the last
// window, for a kept ratio that reflects how things go now rather than since the queue began.
// Every final state is in the map, zero when none finished so.
//
// The count is kept in whole five-minute buckets (of the store's clock, aligned to the Unix
// epoch): it covers everything finished from the start of the bucket holding now-window up to
// now, so up to five minutes more than window, never less. window must be positive and at most
// the retention period, which is how long buckets are kept. One round trip.
func (s *Store) Outcomes(ctx context.Context, queue string, window time.Duration) (map[State]int64, error) {
	what := fmt.Sprintf("counting outcomes of queue %s over the last %v", queue, window)
	if err := s.checkQueue(queue); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if window <= 0 || window > s.retention {
		return nil, fmt.Errorf("%s: %w: window must be positive and at most the retention period %v",
			what, ErrInvalid, s.retention)
	}
	now := millis(s.clk.Now())
	size := outcomeBucket.Milliseconds()
	first, last := floorDiv(now-window.Milliseconds(), size), floorDiv(now, size)
	k := s.ks(queue)
	cmds := make([]*redis.MapStringStringCmd, 0, last-first+1)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for b := first; b <= last; b++ {
			cmds = append(cmds, p.HGetAll(ctx, k.window(b)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := map[State]int64{}
	for _, st := range States() {
		if !st.Open() {
			out[st] = 0
		}
	}
	for _, c := range cmds {
		for f, v := range c.Val() {
			n, err := parseInt(v)
			if err != nil {
				return nil, fmt.Errorf("%s: counter %s: %w", what, f, err)
			}
			out[State(f)] += n
		}
	}
	return out, nil
}

// floorDiv is a/b rounded down, also for times before the epoch.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Head returns the deadline of the earliest-deadline job Claim could take now: due jobs, and
// delayed ones whose not-before has come (Claim makes those due before it picks). False when
// no job is due. It does not apply owner holds or preferences, which depend on the claimer;
// it is for ordering an agent's queues, most urgent first. Due delayed jobs are read, not
// moved, at most listCap of them (a queue nobody claimed from while thousands of holds ran out
// could hide its head beyond them; the next Claim moves them all). Read-only, one round trip.
func (s *Store) Head(ctx context.Context, queue string) (time.Time, bool, error) {
	what := "finding the most urgent due job in queue " + queue
	if err := s.checkQueue(queue); err != nil {
		return time.Time{}, false, fmt.Errorf("%s: %w", what, err)
	}
	res, err := s.run(ctx, s.sc.head, queue, s.ks(queue).common(), s.clk.Now(), listCap)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s: %w", what, err)
	}
	if len(res) < 2 {
		return time.Time{}, false, nil
	}
	ms, ok := res[1].(int64)
	if !ok {
		return time.Time{}, false, fmt.Errorf("%s: unexpected script reply %v", what, res)
	}
	return time.UnixMilli(ms).UTC(), true, nil
}

// Due is one pending promise as a schedule sees it.
type Due struct {
	Deadline time.Time
	// NotBefore is when it may be dialled; zero when it may be dialled now.
	NotBefore time.Time
}

// Schedule lists the pending promises of queue, earliest deadline first, for forecasting which
// will miss their deadline: at most limit that are due now and limit that wait for a
// not-before (retry backoff, calling hours), with total the number pending in all (more than
// the list when it was cut). Read-only, one round trip.
func (s *Store) Schedule(ctx context.Context, queue string, limit int) (list []Due, total int, err error) {
	what := "reading the schedule of queue " + queue
	if err := s.checkQueue(queue); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	if limit < 1 {
		return nil, 0, fmt.Errorf("%s: %w: limit %d must be at least 1", what, ErrInvalid, limit)
	}
	res, err := s.run(ctx, s.sc.schedule, queue, s.ks(queue).common(), s.clk.Now(), limit)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	if len(res) < 3 {
		return nil, 0, fmt.Errorf("%s: unexpected script reply %v", what, res)
	}
	n, _ := res[1].(int64)
	flat, _ := res[2].([]any)
	for i := 0; i+1 < len(flat); i += 2 {
		dl, _ := flat[i].(int64)
		nb, _ := flat[i+1].(int64)
		d := Due{Deadline: time.UnixMilli(dl).UTC()}
		if nb > 0 {
			d.NotBefore = time.UnixMilli(nb).UTC()
		}
		list = append(list, d)
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Deadline.Before(list[j].Deadline) })
	return list, int(n), nil
}

// Wakeups tells when any process sharing this Redis put a promise of one of the store's queues
// into pending — made, retried, released or reclaimed — so a dispatcher can look at once
// instead of waiting for its next rescan. Wake-ups are coalesced: the channel holds at most
// one. It closes when ctx ends; the subscription reconnects by itself after a Redis outage
// (wake-ups published meanwhile are lost, which the rescan covers).
func (s *Store) Wakeups(ctx context.Context) <-chan struct{} {
	channels := make([]string, 0, len(s.queues))
	for q := range s.queues {
		channels = append(channels, s.ks(q).base+"wake")
	}
	sort.Strings(channels)
	ps := s.rdb.Subscribe(ctx, channels...)
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer ps.Close()
		msgs := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}
