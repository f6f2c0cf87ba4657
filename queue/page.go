package queue

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/callbackd/callbackd/internal/phone"
)

// PagePos is a place in the order of Page, earliest deadline first and by id among equal
// deadlines: a page holds the jobs after it. The zero PagePos is the start.
type PagePos struct {
	Deadline time.Time
	ID       string
}

// String encodes the position as an opaque cursor for a client to hand back.
func (p PagePos) String() string {
	if p.ID == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(millis(p.Deadline), 10) + "." + p.ID))
}

// ParsePagePos reads a cursor made by PagePos.String ("" is the start).
func ParsePagePos(s string) (PagePos, error) {
	if s == "" {
		return PagePos{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	ms, id, ok := strings.Cut(string(raw), ".")
	n, perr := strconv.ParseInt(ms, 10, 64)
	if err != nil || !ok || perr != nil {
		return PagePos{}, fmt.Errorf("%w: cursor %q is not one this server gave", ErrInvalid, s)
	}
	if _, err := ulid.ParseStrict(id); err != nil {
		return PagePos{}, fmt.Errorf("%w: cursor %q is not one this server gave", ErrInvalid, s)
	}
	return PagePos{Deadline: time.UnixMilli(n).UTC(), ID: id}, nil
}

func (p PagePos) less(j Job) bool {
	return p.Deadline.Before(j.Deadline) || (p.Deadline.Equal(j.Deadline) && p.ID < j.ID)
}

// PageOptions selects the jobs of Page.
type PageOptions struct {
	// States to include; all when empty.
	States []State
	// Number (any form phone.ParseE164 reads), when set, keeps only that customer's jobs.
	Number string
	// Limit is the most jobs returned: 100 when zero, at most 1000.
	Limit int
	// After is where the previous page ended.
	After PagePos
}

// Page returns the next jobs of queue after o.After, earliest deadline first, and the position
// to read on from, zero when there is nothing after. Unlike List it pages through any number
// of due jobs with one bounded read each; waiting, leased and finished jobs are read up to
// listCap per set, as List does. A job whose hash cannot be decoded is left out of its page
// and named in the error returned beside the page (whose position still leads past it), as
// List does. One round trip.
func (s *Store) Page(ctx context.Context, queue string, o PageOptions) ([]Job, PagePos, error) {
	what := "reading a page of queue " + queue
	if err := s.checkQueue(queue); err != nil {
		return nil, PagePos{}, fmt.Errorf("%s: %w", what, err)
	}
	if o.Limit == 0 {
		o.Limit = 100
	}
	if o.Limit < 0 || o.Limit > maxListLimit {
		return nil, PagePos{}, fmt.Errorf("%s: %w: limit %d must be between 1 and %d", what, ErrInvalid, o.Limit, maxListLimit)
	}
	states := make([]string, 0, len(o.States))
	for _, st := range o.States {
		if !st.valid() {
			return nil, PagePos{}, fmt.Errorf("%s: %w: unknown state %q", what, ErrInvalid, st)
		}
		states = append(states, string(st))
	}
	number := ""
	if o.Number != "" {
		n, err := phone.ParseE164(o.Number)
		if err != nil {
			return nil, PagePos{}, fmt.Errorf("%s: %w: number: %w", what, ErrInvalid, err)
		}
		number = n
	}
	k := s.ks(queue)
	// One more than asked for tells whether there is a next page.
	v, err := s.sc.page.Run(ctx, s.rdb, k.common(), millis(s.clk.Now()), s.retention.Milliseconds(), queue,
		strings.Join(states, ","), o.Limit+1, listCap, millis(o.After.Deadline), o.After.ID, number).Result()
	if err != nil {
		return nil, PagePos{}, fmt.Errorf("%s: %w", what, err)
	}
	rows, _ := v.([]any)
	jobs := make([]Job, 0, len(rows))
	// A job that cannot be decoded (a broken record) keeps its place in the order, where the
	// script put it (pagePlaceField), so that the page and the position after it are what
	// they would be with it; it is then left out and named in the error.
	bad := map[string]error{}
	for _, row := range rows {
		h, err := hashFromReply(row)
		if err != nil {
			return nil, PagePos{}, fmt.Errorf("%s: %w", what, err)
		}
		j, err := jobFromHash(h)
		if err != nil {
			if h["id"] == "" {
				return nil, PagePos{}, fmt.Errorf("%s: %w", what, err)
			}
			place, _ := parseInt(h[pagePlaceField])
			j = Job{ID: h["id"], Deadline: time.UnixMilli(place).UTC()}
			bad[j.ID] = fmt.Errorf("%s: %w: %w", what, ErrSkipped, err)
		}
		jobs = append(jobs, j)
	}
	jobs, next := CutPage(jobs, o.After, o.Limit)
	if len(bad) == 0 {
		return jobs, next, nil
	}
	var problems []error
	kept := jobs[:0]
	for _, j := range jobs {
		if err, ok := bad[j.ID]; ok {
			problems = append(problems, err)
			continue
		}
		kept = append(kept, j)
	}
	return kept, next, errors.Join(problems...)
}

// pagePlaceField is the field page.lua adds to each job it answers: the deadline (ms) it
// ordered the job by, which for a deadline that is not a number is where the job stands in
// the ready set (0 elsewhere).
const pagePlaceField = "page_place"

// CutPage sorts jobs earliest deadline first (by id among equals), keeps those after after,
// and cuts them to limit; next is the last job kept when more were left, else zero. Paging
// over several queues merges their pages with it.
func CutPage(jobs []Job, after PagePos, limit int) ([]Job, PagePos) {
	kept := jobs[:0]
	for _, j := range jobs {
		if after.ID == "" || after.less(j) {
			kept = append(kept, j)
		}
	}
	sort.SliceStable(kept, func(a, b int) bool {
		if !kept[a].Deadline.Equal(kept[b].Deadline) {
			return kept[a].Deadline.Before(kept[b].Deadline)
		}
		return kept[a].ID < kept[b].ID
	})
	if len(kept) <= limit {
		return kept, PagePos{}
	}
	kept = kept[:limit]
	last := kept[limit-1]
	return kept, PagePos{Deadline: last.Deadline, ID: last.ID}
}

// Window is when a promise may be called: from NotBefore (zero: now) until Deadline.
type Window struct {
	NotBefore, Deadline time.Time
	// HoldUntil ends the owner's preference window (zero: the claim's share of it).
	HoldUntil time.Time
	// AtRisk records that the forecast says the deadline will be missed.
	AtRisk bool
}

// Reschedule gives a pending promise a new window; a promise being dialled or finished is
// ErrWrongState. The deadline must be in the future, after the not-before, and within the
// queue's max open age of the promise's creation (Expire would end it before). One round trip.
func (s *Store) Reschedule(ctx context.Context, ref Ref, w Window, detail string) (Job, error) {
	what := fmt.Sprintf("rescheduling job %s in queue %s", ref.ID, ref.Queue)
	if err := s.checkRef(ref); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	now := s.clk.Now()
	if !w.Deadline.After(now) {
		return Job{}, fmt.Errorf("%s: %w: deadline %s is not after now (%s)", what, ErrInvalid,
			w.Deadline.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if w.NotBefore.IsZero() {
		w.NotBefore = now
	}
	if !w.NotBefore.Before(w.Deadline) {
		return Job{}, fmt.Errorf("%s: %w: not-before %s is not before the deadline %s", what, ErrInvalid,
			w.NotBefore.UTC().Format(time.RFC3339), w.Deadline.UTC().Format(time.RFC3339))
	}
	if w.HoldUntil.After(w.Deadline) {
		return Job{}, fmt.Errorf("%s: %w: hold-until is after the deadline", what, ErrInvalid)
	}
	if err := CheckText("detail", detail); err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	cur, err := s.Get(ctx, ref)
	if err != nil {
		return Job{}, err
	}
	if end := cur.Created.Add(s.maxAge[ref.Queue]); w.Deadline.After(end) {
		return Job{}, fmt.Errorf("%s: %w: deadline %s is after %s, when the promise expires (queues[].max_open_age from its creation)",
			what, ErrInvalid, w.Deadline.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	k := s.ks(ref.Queue)
	res, err := s.run(ctx, s.sc.reschedule, ref.Queue, k.common(k.job(ref.ID)), now, ref.ID,
		millis(w.NotBefore), millis(w.Deadline), holdMillis(w.HoldUntil), flag(w.AtRisk), phone.MaskText(detail))
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	return jobResult(res, what)
}
