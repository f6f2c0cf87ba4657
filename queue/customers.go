package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/phone"
)

// Everything the store keeps about one customer, for a data-subject request: which keys, and
// what they hold, as Redis has it (nothing decoded away, nothing masked: the customer is
// owed their own number).

// CustomerRecords is everything stored about one number.
type CustomerRecords struct {
	Number string `json:"number"`
	// Queues has one entry per configured queue, also when it holds nothing.
	Queues []QueueRecords `json:"queues"`
	// RateLimits are the counters named after the number (block counters name a prefix many
	// numbers share and are not the number's).
	RateLimits []StoredKey `json:"rate_limits"`
	// Asked is the intake's memory of the promises the number is owed ("<queue>/<id>" →
	// remembered until, ms), which lets the customer's own call resolve them.
	Asked map[string]string `json:"asked,omitempty"`
	// Calls are the detector's records of calls in progress from or to the number
	// (CallMemory).
	Calls []StoredKey `json:"calls"`
}

// QueueRecords is what one queue holds about a number.
type QueueRecords struct {
	Queue string `json:"queue"`
	// Jobs are the job hashes holding the number: open, finished and quarantined ones.
	Jobs []StoredJob `json:"jobs"`
	// Dedupe is the key pointing at the number's open promise, if any.
	Dedupe *StoredKey `json:"dedupe,omitempty"`
	// Outcomes are the outcome-stream entries an earlier version wrote of its finished
	// promises; a finish is now one of its Events.
	Outcomes []StreamEntry `json:"outcomes"`
	// Events are the event-stream entries about its promises (see Store.ReadEvents).
	Events []StreamEntry `json:"events"`
	// Quarantine are the dead-letter entries of its jobs, by job id.
	Quarantine map[string]string `json:"quarantine,omitempty"`
}

// StoredJob is one job hash as stored, with the indexes that list it.
type StoredJob struct {
	Key     string            `json:"key"`
	TTL     time.Duration     `json:"ttl_ns"` // -1: none
	Fields  map[string]string `json:"fields"`
	Indexes []string          `json:"indexes"`
	// History is the job's history list, when it has one.
	History *StoredList `json:"history,omitempty"`
}

// StoredList is a list key and its entries.
type StoredList struct {
	Key     string        `json:"key"`
	Entries []string      `json:"entries"`
	TTL     time.Duration `json:"ttl_ns"`
}

// StoredKey is a string key and its value.
type StoredKey struct {
	Key   string        `json:"key"`
	Value string        `json:"value"`
	TTL   time.Duration `json:"ttl_ns"`
}

// StreamEntry is one entry of the event or outcome stream.
type StreamEntry struct {
	ID     string         `json:"id"`
	Fields map[string]any `json:"fields"`
}

// Erased says what EraseCustomer deleted.
type Erased struct {
	Number string        `json:"number"`
	Queues []QueueErased `json:"queues"`
	// RateLimits are the deleted counter keys.
	RateLimits []string `json:"rate_limits"`
	// Asked says the memory of what the number is owed was deleted.
	Asked bool `json:"asked"`
	// Calls are the deleted records of calls in progress (the detector then forgets them at
	// its next restart; the daemon running now still follows them in memory).
	Calls []string `json:"calls"`
}

// QueueErased is what was deleted from one queue.
type QueueErased struct {
	Queue      string   `json:"queue"`
	Jobs       []string `json:"jobs"`
	Dedupe     int      `json:"dedupe_keys"`
	Outcomes   int      `json:"outcome_entries"`
	Quarantine int      `json:"quarantine_entries"`
	Events     int      `json:"event_entries"`
}

const streamPage = 1000 // stream entries read per XRANGE while searching

// ExportCustomer returns everything the store holds about number (E.164) in every queue.
// It only reads, key by key, so it is a snapshot of each key, not of all at one instant.
func (s *Store) ExportCustomer(ctx context.Context, number string) (CustomerRecords, error) {
	n, what, err := s.customerNumber("exporting", number)
	if err != nil {
		return CustomerRecords{}, err
	}
	out := CustomerRecords{Number: n, Queues: []QueueRecords{}}
	for _, q := range s.Queues() {
		k := s.ks(q)
		jobs, err := s.jobsOf(ctx, q, n)
		if err != nil {
			return out, fmt.Errorf("%s: %w", what, err)
		}
		qr := QueueRecords{Queue: q, Jobs: []StoredJob{}, Outcomes: []StreamEntry{}, Events: []StreamEntry{}}
		for _, key := range jobs {
			fields, err := s.rdb.HGetAll(ctx, key).Result()
			if err != nil {
				return out, fmt.Errorf("%s: reading %s: %w", what, key, err)
			}
			if fields["number"] != n {
				continue // finished and gone, or changed, since the search
			}
			id := strings.TrimPrefix(key, k.job(""))
			sj := StoredJob{Key: key, TTL: s.ttl(ctx, key), Fields: fields, Indexes: []string{}}
			if hist, err := s.rdb.LRange(ctx, k.history(id), 0, -1).Result(); err != nil {
				return out, fmt.Errorf("%s: reading %s: %w", what, k.history(id), err)
			} else if len(hist) > 0 {
				sj.History = &StoredList{Key: k.history(id), Entries: hist, TTL: s.ttl(ctx, k.history(id))}
			}
			for _, idx := range []struct{ name, key string }{{"ready", k.ready()}, {"delayed", k.delayed()},
				{"leases", k.leases()}, {"done", k.done()}, {"open", k.open()}} {
				if err := s.rdb.ZScore(ctx, idx.key, id).Err(); err == nil {
					sj.Indexes = append(sj.Indexes, idx.name)
				}
			}
			qr.Jobs = append(qr.Jobs, sj)
			if entry, err := s.rdb.HGet(ctx, k.quarantine(), id).Result(); err == nil {
				if qr.Quarantine == nil {
					qr.Quarantine = map[string]string{}
				}
				qr.Quarantine[id] = entry
			}
		}
		if v, err := s.rdb.Get(ctx, k.dedupe(n)).Result(); err == nil {
			qr.Dedupe = &StoredKey{Key: k.dedupe(n), Value: v, TTL: s.ttl(ctx, k.dedupe(n))}
		} else if !errors.Is(err, redis.Nil) {
			return out, fmt.Errorf("%s: reading %s: %w", what, k.dedupe(n), err)
		}
		entries, _, err := s.entriesOf(ctx, q, "outcome", n)
		if err != nil {
			return out, fmt.Errorf("%s: %w", what, err)
		}
		qr.Outcomes = append(qr.Outcomes, entries...)
		events, _, err := s.entriesOf(ctx, q, "event", n)
		if err != nil {
			return out, fmt.Errorf("%s: %w", what, err)
		}
		qr.Events = append(qr.Events, events...)
		out.Queues = append(out.Queues, qr)
	}
	keys, err := s.rateLimitKeysOf(ctx, n)
	if err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	out.RateLimits = []StoredKey{}
	for _, key := range keys {
		v, err := s.rdb.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			continue // its window ended since the search
		}
		if err != nil {
			return out, fmt.Errorf("%s: reading %s: %w", what, key, err)
		}
		out.RateLimits = append(out.RateLimits, StoredKey{Key: key, Value: v, TTL: s.ttl(ctx, key)})
	}
	asked, err := s.rdb.HGetAll(ctx, askedKey(s.prefix, n)).Result()
	if err != nil {
		return out, fmt.Errorf("%s: reading the memory of what it is owed: %w", what, err)
	}
	if len(asked) > 0 {
		out.Asked = asked
	}
	calls, err := s.callsOf(ctx, n)
	if err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	out.Calls = []StoredKey{}
	for _, c := range calls {
		out.Calls = append(out.Calls, StoredKey{Key: c.key, Value: c.record, TTL: s.ttl(ctx, c.key)})
	}
	return out, nil
}

// EraseCustomer deletes everything the store holds about number (E.164): in each queue, in
// one script, its jobs (open, finished, quarantined — a callback in progress finds its
// promise gone), their index entries and dead letters, its dedupe key and its outcome-stream
// entries; then its rate-limit counters. Counters that count promises without naming anyone
// are kept. Running it again finds nothing.
func (s *Store) EraseCustomer(ctx context.Context, number string) (Erased, error) {
	n, what, err := s.customerNumber("erasing", number)
	if err != nil {
		return Erased{}, err
	}
	out := Erased{Number: n, Queues: []QueueErased{}, RateLimits: []string{}}
	for _, q := range s.Queues() {
		k := s.ks(q)
		jobs, err := s.jobsOf(ctx, q, n)
		if err != nil {
			return out, fmt.Errorf("%s: %w", what, err)
		}
		entries, last, err := s.entriesOf(ctx, q, "outcome", n)
		if err != nil {
			return out, fmt.Errorf("%s: %w", what, err)
		}
		events, lastEvent, err := s.entriesOf(ctx, q, "event", n)
		if err != nil {
			return out, fmt.Errorf("%s: %w", what, err)
		}
		args := []any{n, last, lastEvent, len(entries)}
		for _, e := range entries {
			args = append(args, e.ID)
		}
		for _, e := range events {
			args = append(args, e.ID)
		}
		res, err := s.run(ctx, s.sc.erase, q, append(k.common(k.quarantine(), k.dedupe(n)), jobs...), s.clk.Now(), args...)
		if err != nil {
			return out, fmt.Errorf("%s in queue %s: %w", what, q, err)
		}
		if len(res) < 6 {
			return out, fmt.Errorf("%s in queue %s: unexpected reply %v", what, q, res)
		}
		qe := QueueErased{Queue: q, Jobs: []string{}}
		ids, _ := res[1].([]any)
		for _, id := range ids {
			if id, ok := id.(string); ok {
				qe.Jobs = append(qe.Jobs, id)
			}
		}
		sort.Strings(qe.Jobs)
		d, _ := res[2].(int64)
		o, _ := res[3].(int64)
		qu, _ := res[4].(int64)
		ev, _ := res[5].(int64)
		qe.Dedupe, qe.Outcomes, qe.Quarantine, qe.Events = int(d), int(o), int(qu), int(ev)
		out.Queues = append(out.Queues, qe)
	}
	keys, err := s.rateLimitKeysOf(ctx, n)
	if err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	// Its own hash tag, so its own command; after the jobs, so no memory outlives its promise.
	deleted, err := s.rdb.Del(ctx, askedKey(s.prefix, n)).Result()
	if err != nil {
		return out, fmt.Errorf("%s: deleting the memory of what it is owed: %w", what, err)
	}
	out.Asked = deleted > 0
	calls, err := s.callsOf(ctx, n)
	if err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	out.Calls = []string{}
	for _, c := range calls {
		// Each record is its own key outside any hash tag: one command each, also on Cluster.
		if err := s.rdb.Del(ctx, c.key).Err(); err != nil {
			return out, fmt.Errorf("%s: deleting the record of call %s: %w", what, c.member, err)
		}
		if err := s.rdb.ZRem(ctx, s.prefix+":calls", c.member).Err(); err != nil {
			return out, fmt.Errorf("%s: deleting call %s from the index: %w", what, c.member, err)
		}
		out.Calls = append(out.Calls, c.key)
	}
	if len(keys) > 0 {
		// One hash tag, one slot: a single DEL, also on Redis Cluster.
		if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
			return out, fmt.Errorf("%s: deleting rate-limit counters: %w", what, err)
		}
		out.RateLimits = keys
	}
	return out, nil
}

// callRecord is one detector record of a call in progress (CallMemory) that names a number.
type callRecord struct{ key, member, record string }

// callsOf finds the detector's records of calls in progress that hold n: the calls index lists
// them (a few hundred at most: calls in progress), each record is read and searched.
func (s *Store) callsOf(ctx context.Context, n string) ([]callRecord, error) {
	members, err := s.rdb.ZRange(ctx, s.prefix+":calls", 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the index of calls in progress: %w", err)
	}
	var out []callRecord
	for _, m := range members {
		asterisk, linked, ok := strings.Cut(m, " ")
		if !ok {
			continue // not a call's entry; CallMemory.Load reports it
		}
		key := s.prefix + ":call:" + asterisk + ":" + linked
		v, err := s.rdb.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading the record of call %s: %w", m, err)
		}
		if strings.Contains(v, `"`+n+`"`) {
			out = append(out, callRecord{key: key, member: m, record: v})
		}
	}
	return out, nil
}

func (s *Store) customerNumber(verb, number string) (n, what string, err error) {
	what = fmt.Sprintf("%s what is stored about %s", verb, phone.Mask(number))
	if n, err = phone.ParseE164(number); err != nil {
		return "", what, fmt.Errorf("%s: %w: %w", what, ErrInvalid, err)
	}
	return n, what, nil
}

func (s *Store) ttl(ctx context.Context, key string) time.Duration {
	d, err := s.rdb.PTTL(ctx, key).Result()
	if err != nil || d < 0 {
		return -1
	}
	return d
}

// jobsOf finds the job hashes of queue q holding number n. It scans the keys rather than the
// indexes so that a hash in no index (quarantined, then its dead letter removed) is found too.
func (s *Store) jobsOf(ctx context.Context, q, n string) ([]string, error) {
	keys, err := s.scan(ctx, s.ks(q).job("*"))
	if err != nil {
		return nil, fmt.Errorf("searching the jobs of queue %s: %w", q, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, key := range keys {
			cmds[i] = p.HGet(ctx, key, "number")
		}
		return nil
	})
	// A key of another type (a broken record) holds no number: it is read as none, per
	// command, and does not stop the search.
	if err != nil && !isNilOrWrongType(err) {
		return nil, fmt.Errorf("reading the numbers of queue %s's jobs: %w", q, err)
	}
	var out []string
	for i, c := range cmds {
		if c.Val() == n {
			out = append(out, keys[i])
		}
	}
	sort.Strings(out)
	return out, nil
}

// entriesOf reads queue q's outcome or event stream (which: "outcome", "event") page by page
// for n's entries, and returns the id of the last entry read ("0-0" for an empty stream), from
// which EraseCustomer's script reads on.
func (s *Store) entriesOf(ctx context.Context, q, which, n string) ([]StreamEntry, string, error) {
	key := s.ks(q).base + which + "s"
	var out []StreamEntry
	last, start := "0-0", "-"
	for {
		page, err := s.rdb.XRangeN(ctx, key, start, "+", streamPage).Result()
		if err != nil {
			return nil, last, fmt.Errorf("reading the %s stream of queue %s: %w", which, q, err)
		}
		for _, e := range page {
			if e.ID == last {
				continue // the page starts with the previous page's last entry
			}
			if e.Values["number"] == n {
				// An event's empty fields are slots it has no value for, not data of the customer.
				for k, v := range e.Values {
					if v == "" {
						delete(e.Values, k)
					}
				}
				out = append(out, StreamEntry{ID: e.ID, Fields: e.Values})
			}
		}
		if len(page) < streamPage {
			if len(page) > 0 {
				last = page[len(page)-1].ID
			}
			return out, last, nil
		}
		last = page[len(page)-1].ID
		start = last
	}
}

// rateLimitKeysOf finds the rate-limit counters named after n (see RateLimits.key).
func (s *Store) rateLimitKeysOf(ctx context.Context, n string) ([]string, error) {
	keys, err := s.scan(ctx, s.prefix+":{ratelimit}:*:"+n+":*")
	if err != nil {
		return nil, fmt.Errorf("searching the rate-limit counters: %w", err)
	}
	sort.Strings(keys)
	return keys, nil
}

// scan lists the keys matching pattern, on every master of a cluster. The patterns used hold
// only prefix, queue and number characters, none of them glob specials.
func (s *Store) scan(ctx context.Context, pattern string) ([]string, error) {
	one := func(ctx context.Context, c redis.Cmdable) ([]string, error) {
		var out []string
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			out = append(out, iter.Val())
		}
		return out, iter.Err()
	}
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return one(ctx, s.rdb)
	}
	var mu sync.Mutex // ForEachMaster calls in parallel
	var all []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := one(ctx, c)
		mu.Lock()
		defer mu.Unlock()
		all = append(all, keys...)
		return err
	})
	return all, err
}
