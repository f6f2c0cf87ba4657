package queue

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// customer is a number as the store keeps it and every other way it could be written down.
type customer struct {
	e164  string
	forms []string // E.164, all digits, national with trunk 0, national significant number
}

var (
	carol = customer{"+31612345678", []string{"+31612345678", "31612345678", "0612345678", "612345678"}}
	dave  = customer{"+31687654321", []string{"+31687654321", "31687654321", "0687654321", "687654321"}}
)

// lifetime gives number every kind of record in queue q: a kept promise (merged once), an
// unreachable, a cancelled and a resolved one, one expired for its age (testQueue only, whose
// max open age is testMaxAge), one still open, and rate-limit counters. It advances the clock.
func (f fixture) lifetime(t *testing.T, q string, c customer) {
	t.Helper()
	ctx := f.ctx
	req := func(max int) Request {
		r := request(c.e164)
		r.Queue, r.MaxAttempts, r.Deadline = q, max, f.clk.Now().Add(2*time.Hour)
		return r
	}
	claim := func() *Job {
		t.Helper()
		j, err := f.s.Claim(ctx, q, ClaimOptions{Worker: "w1", Lease: time.Minute})
		if err != nil {
			t.Fatalf("Claim in %s: %v", q, err)
		}
		return j
	}
	must := func(_ Job, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.enqueue(t, req(3))
	f.enqueue(t, req(3)) // merged
	j := claim()
	must(f.s.MarkConnected(ctx, j.Ref(), j.Lease.Token, f.clk.Now()))
	must(f.s.Complete(ctx, j.Ref(), j.Lease.Token, StateKept, "talked via PJSIP/"+c.e164+"@provider"))

	f.enqueue(t, req(1))
	j = claim()
	must(f.s.Retry(ctx, j.Ref(), j.Lease.Token, f.clk.Now(), "create channel PJSIP/"+c.e164+"@provider: busy"))

	j2 := f.enqueue(t, req(3))
	must(f.s.Cancel(ctx, j2.Ref(), "by hand"))
	f.enqueue(t, req(3))
	must(f.s.Resolve(ctx, q, c.e164, "called in"))

	if q == testQueue {
		f.enqueue(t, req(3))
		f.clk.Advance(testMaxAge + time.Minute)
		if res, err := f.s.Expire(ctx, q); err != nil || len(res.Expired) == 0 {
			t.Fatalf("Expire = %+v, %v; want this promise expired", res, err)
		}
	}
	r := req(3)
	r.Deadline = f.clk.Now().Add(24 * time.Hour)
	open := f.enqueue(t, r)
	// The intake remembers the open promise, so the customer's own call can resolve it.
	if err := NewAsked(f.rdb, "").Remember(ctx, c.e164, open.Ref(), r.Deadline.Add(24*time.Hour), f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	limits := NewRateLimits(f.rdb, "")
	if err := limits.Take(ctx, f.clk.Now(), Limit{Name: "dials_per_number_per_day", Subject: c.e164, Max: 10, Window: 24 * time.Hour},
		Limit{Name: "promises_per_block_per_hour", Subject: c.forms[1][:8], Max: 10, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
}

// everything is every key in Redis with all it holds (its members, fields, values, entries)
// as one string, to search for a number in any form.
func (f fixture) everything(t *testing.T) map[string]string {
	t.Helper()
	keys, err := f.rdb.Keys(f.ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		var parts []string
		switch typ := f.rdb.Type(f.ctx, k).Val(); typ {
		case "string":
			parts = append(parts, f.rdb.Get(f.ctx, k).Val())
		case "hash":
			for field, v := range f.rdb.HGetAll(f.ctx, k).Val() {
				parts = append(parts, field, v)
			}
		case "zset":
			parts = append(parts, f.rdb.ZRange(f.ctx, k, 0, -1).Val()...)
		case "set":
			parts = append(parts, f.rdb.SMembers(f.ctx, k).Val()...)
		case "list":
			parts = append(parts, f.rdb.LRange(f.ctx, k, 0, -1).Val()...)
		case "stream":
			for _, e := range f.rdb.XRange(f.ctx, k, "-", "+").Val() {
				for field, v := range e.Values {
					parts = append(parts, field, fmt.Sprint(v))
				}
			}
		default:
			t.Fatalf("key %s has type %s, which this test cannot read", k, typ)
		}
		sort.Strings(parts)
		out[k] = strings.Join(parts, " ")
	}
	return out
}

// mentions says which form of c, if any, text contains.
func (c customer) mentions(text string) (string, bool) {
	for _, form := range c.forms {
		if strings.Contains(text, form) {
			return form, true
		}
	}
	return "", false
}

// unbounded are the keys of a queue that live as long as the queue: indexes of ids, counters,
// the dead-letter hash (ids, times, reasons). Of them only the outcome stream holds numbers,
// and every Reclaim and every finish trims it to the retention period.
// preferIndex says key is a queue's per-target index of ready ids (for:<target>): ids and
// deadlines only, and gone (empty) as soon as no ready job names the target.
func (f fixture) preferIndex(key string) bool {
	for _, q := range []string{testQueue, otherQ} {
		if strings.HasPrefix(key, f.s.ks(q).forTarget("")) {
			return true
		}
	}
	return false
}

func (f fixture) unbounded(q string) map[string]bool {
	k := f.s.ks(q)
	return map[string]bool{k.ready(): true, k.delayed(): true, k.leases(): true, k.done(): true, k.open(): true,
		k.base + "outcomes": true, k.events(): true, k.base + "fence": true, k.totals(): true, k.quarantine(): true,
		k.base + "for-indexed": true}
}

// After a lifetime of promises in every state, every key that names a customer's number or
// holds it expires on its own: the dedupe key soon after the promise's max open age, rate-limit
// counters with their window, job hashes a retention period after they finished (or after
// they could have been open longest). Keys without a TTL are the queues' own, listed.
func TestEveryKeyNamingOrHoldingANumberExpires(t *testing.T) {
	f := newExpireFixture(t)
	for _, q := range []string{testQueue, otherQ} {
		for _, c := range []customer{carol, dave} {
			f.lifetime(t, q, c)
		}
	}
	// A broken record moved aside keeps its hash for an operator, for a retention period.
	broken := f.enqueue(t, Request{Queue: otherQ, Number: "+31611112222", Reason: ReasonVoicemail,
		Deadline: f.clk.Now().Add(time.Hour), MaxAttempts: 3})
	f.rdb.HSet(f.ctx, f.s.ks(otherQ).job(broken.ID), "attempts", "garbage")
	if j, err := f.s.Claim(f.ctx, otherQ, ClaimOptions{Worker: "w1", Lease: time.Minute}); err != nil || j.ID == broken.ID {
		t.Fatalf("Claim = %v, %v; want another job than the broken one", j, err)
	}
	if f.rdb.HExists(f.ctx, f.s.ks(otherQ).quarantine(), broken.ID).Val() == false {
		t.Fatal("the broken job was not quarantined")
	}
	bounded := testMaxAge + DefaultRetention
	if d := DefaultMaxOpenAge + DefaultRetention; d > bounded {
		bounded = d
	}
	unbounded := f.unbounded(testQueue)
	for k := range f.unbounded(otherQ) {
		unbounded[k] = true
	}
	checked := 0
	for key, holds := range f.everything(t) {
		pttl := f.rdb.PTTL(f.ctx, key).Val()
		if unbounded[key] || f.preferIndex(key) {
			continue
		}
		checked++
		if pttl <= 0 || pttl > bounded {
			t.Errorf("key %s (holding %.80q) has TTL %v, want one of at most %v", key, holds, pttl, bounded)
		}
	}
	// Dedupe keys, the open promises', go soon after their promise would have expired.
	dedupes := 0
	for _, q := range []string{testQueue, otherQ} {
		age := f.s.maxAge[q]
		keys := f.rdb.Keys(f.ctx, f.s.ks(q).dedupe("*")).Val()
		for _, key := range keys {
			dedupes++
			if pttl := f.rdb.PTTL(f.ctx, key).Val(); pttl <= 0 || pttl > age+time.Hour {
				t.Errorf("dedupe key %s: TTL %v, want at most max open age + 1h (%v)", key, pttl, age+time.Hour)
			}
		}
	}
	if dedupes < 3 {
		t.Errorf("%d dedupe keys, want at least 3 (the open promises)", dedupes)
	}
	if checked < 20 {
		t.Errorf("only %d keys checked; the lifetime made fewer records than it should", checked)
	}
}

// An erased number leaves no trace in Redis, in any spelling, in any key or value; the other
// customers' records are exactly as they were; and the export before it listed all of it.
func TestEraseCustomerLeavesNoTraceOfTheNumberAndTouchesNobodyElse(t *testing.T) {
	f := newExpireFixture(t)
	for _, q := range []string{testQueue, otherQ} {
		f.lifetime(t, q, carol)
		f.clk.Advance(time.Minute) // Carol's open promise is due first
		f.lifetime(t, q, dave)
	}
	// Carol's open promise in otherQ is being dialled, and one of her records is broken and
	// quarantined, its dead letter removed by an operator: still hers, still found.
	if _, err := f.s.Claim(f.ctx, otherQ, ClaimOptions{Worker: "w1", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	orphan := f.enqueue(t, Request{Queue: testQueue, Number: carol.e164, Reason: ReasonVoicemail,
		Deadline: f.clk.Now().Add(30 * time.Minute), MaxAttempts: 3})
	f.rdb.HSet(f.ctx, f.s.ks(testQueue).job(orphan.ID), "attempts", "garbage")
	if _, err := f.s.Claim(f.ctx, testQueue, ClaimOptions{Worker: "w1", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	f.rdb.HDel(f.ctx, f.s.ks(testQueue).quarantine(), orphan.ID)
	// An earlier version wrote each finish to the outcome stream as well: such entries, two of
	// Carol's and one of Dave's per queue, are still hers and his.
	for _, q := range []string{testQueue, otherQ} {
		for _, c := range []customer{carol, carol, dave} {
			f.rdb.XAdd(f.ctx, &redis.XAddArgs{Stream: f.s.ks(q).base + "outcomes",
				Values: []any{"id", "01LEGACY", "queue", q, "number", c.e164, "outcome", "kept", "detail", "talked"}})
		}
	}

	before := f.everything(t)
	exported, err := f.s.ExportCustomer(f.ctx, "+31 6 1234 5678")
	wantErr(t, err, nil)
	jobs := 0
	for _, q := range exported.Queues {
		jobs += len(q.Jobs)
		for _, j := range q.Jobs {
			if j.Fields["number"] != carol.e164 {
				t.Errorf("export lists %s, holding %s", j.Key, j.Fields["number"])
			}
		}
	}
	if jobs != 12 || len(exported.RateLimits) != 1 || len(exported.Asked) != 2 {
		t.Errorf("export: %d jobs, %d rate-limit counters, %d remembered promises; want 12 (6 and 5 in the queues, the orphan), 1 and 2 (one open per queue)",
			jobs, len(exported.RateLimits), len(exported.Asked))
	}
	finishes, legacy := 0, 0
	for _, q := range exported.Queues {
		legacy += len(q.Outcomes)
		for _, e := range q.Events {
			if st, err := ParseState(fmt.Sprint(e.Fields["type"])); err == nil && !st.Open() {
				finishes++
			}
			// An event's empty fields are slots it has no value for: the customer is shown
			// what is stored of them, not the stream's layout.
			for k, v := range e.Fields {
				if v == "" {
					t.Errorf("export of event %s lists field %s without a value", e.ID, k)
				}
			}
		}
	}
	if finishes != 10 || legacy != 4 {
		t.Errorf("export: %d finish events and %d outcome-stream entries; want 10 (6 + 4 finished) and 4 (an earlier version's)",
			finishes, legacy)
	}

	erased, err := f.s.EraseCustomer(f.ctx, carol.e164)
	wantErr(t, err, nil)
	after := f.everything(t)
	for key, holds := range after {
		if form, ok := carol.mentions(key + " " + holds); ok {
			t.Errorf("after the erase, key %s still has %s: %.200q", key, form, holds)
		}
	}
	// Dave's records, and every key that never held Carol's number, are as they were. The
	// indexes and counters lose only Carol's entries; compare them without those. An erased
	// job's history (a key of its own, its details masked) goes with the job.
	gone := map[string]bool{}
	for _, q := range erased.Queues {
		for _, id := range q.Jobs {
			gone[f.s.ks(q.Queue).history(id)] = true
		}
	}
	for key, was := range before {
		if _, ok := carol.mentions(key + " " + was); ok {
			continue
		}
		if gone[key] {
			if _, still := after[key]; still {
				t.Errorf("the history %s of an erased job is still there", key)
			}
			continue
		}
		if after[key] != was && !f.unbounded(testQueue)[key] && !f.unbounded(otherQ)[key] && !f.preferIndex(key) {
			t.Errorf("key %s changed: %.120q → %.120q", key, was, after[key])
		}
	}
	for _, q := range []string{testQueue, otherQ} {
		for _, j := range f.rdb.Keys(f.ctx, f.s.ks(q).job("*")).Val() {
			if after[j] != before[j] {
				t.Errorf("job %s changed", j)
			}
		}
	}
	total, entries := 0, 0
	for _, q := range erased.Queues {
		total += len(q.Jobs)
		entries += q.Outcomes
	}
	if total != 12 || entries != 4 || len(erased.RateLimits) != 1 || !erased.Asked {
		t.Errorf("erased %+v; want 12 jobs, 4 outcome entries (an earlier version's), 1 rate-limit counter and the memory of what is owed", erased)
	}
	if again, err := f.s.EraseCustomer(f.ctx, carol.e164); err != nil || len(again.Queues[0].Jobs)+len(again.Queues[1].Jobs) != 0 {
		t.Errorf("a second erase = %+v, %v; want nothing found", again, err)
	}
	// The queue goes on: Dave's open promise is still claimable.
	if j, err := f.s.Claim(f.ctx, otherQ, ClaimOptions{Worker: "w1", Lease: time.Minute}); err != nil || j.Number != dave.e164 {
		t.Errorf("claim after the erase = %v, %v; want Dave's promise", j, err)
	}
}

func TestExportAndEraseRefuseWhatIsNotANumber(t *testing.T) {
	f := newFixture(t)
	before := f.snapshot(t)
	for _, n := range []string{"", "0612345678", "+31 6 12x", "+0123456789"} {
		if _, err := f.s.EraseCustomer(f.ctx, n); !errors.Is(err, ErrInvalid) {
			t.Errorf("EraseCustomer(%q) = %v, want ErrInvalid", n, err)
		}
		if _, err := f.s.ExportCustomer(f.ctx, n); !errors.Is(err, ErrInvalid) {
			t.Errorf("ExportCustomer(%q) = %v, want ErrInvalid", n, err)
		}
	}
	f.assertUnchanged(t, before)
}
