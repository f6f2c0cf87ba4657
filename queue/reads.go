package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Get reads a job, open or finished within the retention period.
func (s *Store) Get(ctx context.Context, ref Ref) (Job, error) {
	what := fmt.Sprintf("reading job %s in queue %s", ref.ID, ref.Queue)
	if err := s.checkRef(ref); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	k := s.ks(ref.Queue)
	var hash *redis.MapStringStringCmd
	var hist *redis.StringSliceCmd
	// One round trip; the pipeline goes to the one slot both keys share.
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		hash = p.HGetAll(ctx, k.job(ref.ID))
		hist = p.LRange(ctx, k.history(ref.ID), 0, -1)
		return nil
	}); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	h := hash.Val()
	if len(h) == 0 {
		return Job{}, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	h[historyListField] = "[" + strings.Join(hist.Val(), ",") + "]"
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
// from the queue's sets; finished ones are the most recently finished still retained. A job
// whose hash cannot be decoded (a broken record) is skipped and named in the error returned
// beside the jobs that could be read, as ReadEvents does: one broken record does not hide the
// others.
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
	var bad []error
	for _, row := range rows {
		j, err := jobFromReply(row)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w: %w", what, ErrSkipped, err))
			continue
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
	return jobs, errors.Join(bad...)
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
	// Quarantined counts broken jobs moved aside (Quarantined), ever.
	Quarantined int64
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
		case "quarantined":
			st.Quarantined = n
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
	ID       string
	Owner    string
	Deadline time.Time
	// HoldUntil ends the owner's preference window when the job has its own (business time).
	HoldUntil time.Time
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
	for i := 0; i+4 < len(flat); i += 5 {
		dl, _ := flat[i].(int64)
		nb, _ := flat[i+1].(int64)
		d := Due{Deadline: time.UnixMilli(dl).UTC()}
		if nb > 0 {
			d.NotBefore = time.UnixMilli(nb).UTC()
		}
		d.ID, _ = flat[i+2].(string)
		d.Owner, _ = flat[i+3].(string)
		if hold, _ := flat[i+4].(int64); hold > 0 {
			d.HoldUntil = time.UnixMilli(hold).UTC()
		}
		list = append(list, d)
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Deadline.Before(list[j].Deadline) })
	return list, int(n), nil
}
