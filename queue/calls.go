package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
)

// CallMemory keeps the calls the detector follows (detect.Memory), so a daemon restarted in
// the middle of a call still makes the promise when the call ends, and a daemon started beside
// others knows the calls they saw begin.
//
// Keys: <prefix>:call:<asterisk id>:<linkedid> (string: the detector's record of the call,
// rewritten whole, expiring TTL after its last write on Redis' clock) and <prefix>:calls
// (zset "<asterisk id> <linkedid>" → when that record is stale, in the caller's clock ms), the
// index Load reads. No hash tag: each record is one key, the index another; a pipeline writes
// both, so it runs on Redis Cluster too.
//
// The detector calls Keep and Drop from the goroutine that delivers ARI events, which must
// never wait for Redis: they only note the latest record of each call, and Run writes what
// is noted, all calls in one pipeline. While Redis is down the notes wait (one per call, the
// latest) and the detector goes on in memory; what is lost is only that a restart during the
// outage forgets the calls since.
type CallMemory struct {
	rdb    redis.UniversalClient
	prefix string
	opts   CallMemoryOptions
	err    error

	mu      sync.Mutex
	pending map[callID]*[]byte // nil: drop the call
	// writing is the batch a Flush has taken and not yet seen stored: its calls still wait,
	// so Pending counts them until Redis has answered.
	writing map[callID]*[]byte
	wake    chan struct{}
	stats   CallMemoryStats
}

// CallMemoryOptions configure a CallMemory. Zero values take the defaults.
type CallMemoryOptions struct {
	Prefix string
	Clock  clock.Clock
	// TTL is how long a call's record outlives its last change: a call abandoned by every
	// daemon (its end never seen) leaves nothing behind after that. At most
	// requestedMemory, so a call restored and ended again is still known to have made its
	// promise. Default DefaultCallTTL.
	TTL time.Duration
	// MaxPending bounds the calls noted but not yet written (Redis down); a call beyond it is
	// not kept, and counted. Default 10000.
	MaxPending int
	// Retry is the first wait after a failed write; it doubles up to RetryMax. Defaults
	// 500ms and 30s.
	Retry, RetryMax time.Duration
	// OnError, when set, hears every failed write (Run retries it).
	OnError func(error)
}

// DefaultCallTTL bounds how long a call's record lives without a change: longer than any call
// a customer waits through, shorter than the marker that the call made its promise.
const DefaultCallTTL = 12 * time.Hour

// requestedMemory is how long a call's "already requested" marker (enqueue.lua) lives: longer
// than DefaultCallTTL, so a record restored after its call already made the promise finds
// the marker still there.
const requestedMemory = 24 * time.Hour

// CallMemoryStats count what the memory did since it was made.
type CallMemoryStats struct {
	Written   uint64 // records written
	Dropped   uint64 // records deleted
	Failed    uint64 // pipelines Redis refused (retried)
	Discarded uint64 // calls not kept: MaxPending were already waiting
}

type callID struct{ asterisk, linkedID string }

func (c callID) member() string { return c.asterisk + " " + c.linkedID }

// StoredCall is one call read back by Load.
type StoredCall struct {
	AsteriskID string
	LinkedID   string
	Record     []byte
}

// NewCallMemory returns the call memory kept in rdb. A bad prefix, TTL or client is reported,
// with ErrInvalid, by Load and Run.
func NewCallMemory(rdb redis.UniversalClient, o CallMemoryOptions) *CallMemory {
	m := &CallMemory{rdb: rdb, pending: map[callID]*[]byte{}, wake: make(chan struct{}, 1)}
	m.prefix, m.err = standaloneKeys(rdb, o.Prefix)
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.TTL == 0 {
		o.TTL = DefaultCallTTL
	}
	if (o.TTL < time.Second || o.TTL > requestedMemory) && m.err == nil {
		m.err = fmt.Errorf("%w: call memory TTL %s must be between 1s and %s", ErrInvalid, o.TTL, requestedMemory)
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 10000
	}
	if o.Retry <= 0 {
		o.Retry = 500 * time.Millisecond
	}
	if o.RetryMax < o.Retry {
		o.RetryMax = 30 * time.Second
	}
	m.opts = o
	return m
}

func (m *CallMemory) key(c callID) string { return m.prefix + ":call:" + c.asterisk + ":" + c.linkedID }
func (m *CallMemory) index() string       { return m.prefix + ":calls" }

// Keep notes the latest record of a call; Run writes it. It never blocks on Redis.
func (m *CallMemory) Keep(asteriskID, linkedID string, record []byte) {
	m.note(callID{asteriskID, linkedID}, &record)
}

// Drop notes that a call is over; Run deletes its record.
func (m *CallMemory) Drop(asteriskID, linkedID string) { m.note(callID{asteriskID, linkedID}, nil) }

func (m *CallMemory) note(id callID, record *[]byte) {
	m.mu.Lock()
	if _, waiting := m.pending[id]; !waiting && len(m.pending) >= m.opts.MaxPending {
		m.stats.Discarded++
		m.mu.Unlock()
		return
	}
	m.pending[id] = record
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Pending is how many calls wait to be written, counting those in a write Redis has not yet
// answered.
func (m *CallMemory) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.pending)
	for id := range m.writing {
		if _, again := m.pending[id]; !again {
			n++
		}
	}
	return n
}

// Stats returns a copy of the counters.
func (m *CallMemory) Stats() CallMemoryStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Run writes what Keep and Drop noted until ctx ends; a failed write is retried with backoff,
// a newer note of the same call replacing the one that failed.
func (m *CallMemory) Run(ctx context.Context) error {
	if m.err != nil {
		return fmt.Errorf("keeping the detector's calls: %w", m.err)
	}
	wait := m.opts.Retry
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		}
		for m.Pending() > 0 {
			if err := m.Flush(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if m.opts.OnError != nil {
					m.opts.OnError(err)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-m.opts.Clock.After(wait):
				}
				wait = min(2*wait, m.opts.RetryMax)
				continue
			}
			wait = m.opts.Retry
		}
	}
}

// Flush writes what is noted now, in one pipeline. On failure the notes are put back, unless
// a newer note of the same call came in meanwhile.
func (m *CallMemory) Flush(ctx context.Context) error {
	if m.err != nil {
		return fmt.Errorf("keeping the detector's calls: %w", m.err)
	}
	m.mu.Lock()
	batch := m.pending
	m.pending = make(map[callID]*[]byte, len(batch))
	if len(batch) > 0 {
		m.writing = batch
	}
	m.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	now := m.opts.Clock.Now()
	stale := millis(now.Add(m.opts.TTL))
	pipe := m.rdb.Pipeline()
	var written, dropped uint64
	for id, rec := range batch {
		if rec == nil {
			pipe.Del(ctx, m.key(id))
			pipe.ZRem(ctx, m.index(), id.member())
			dropped++
			continue
		}
		pipe.Set(ctx, m.key(id), *rec, m.opts.TTL)
		pipe.ZAdd(ctx, m.index(), redis.Z{Score: float64(stale), Member: id.member()})
		written++
	}
	// Calls abandoned by every daemon leave their index entry behind; each write trims them.
	pipe.ZRemRangeByScore(ctx, m.index(), "-inf", fmt.Sprint(millis(now)))
	_, err := pipe.Exec(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writing = nil
	if err != nil {
		m.stats.Failed++
		for id, rec := range batch {
			if _, newer := m.pending[id]; !newer {
				m.pending[id] = rec
			}
		}
		return fmt.Errorf("writing %d of the detector's calls to Redis: %w", len(batch), err)
	}
	m.stats.Written += written
	m.stats.Dropped += dropped
	return nil
}

// Load reads back every call kept and not stale at now, for detect.Detector.Restore. An index
// entry that names no call (or whose record expired) is removed; one that cannot be read is
// reported in refused, named, and skipped. err is set only when Redis could not be read.
func (m *CallMemory) Load(ctx context.Context) (calls []StoredCall, refused []error, err error) {
	if m.err != nil {
		return nil, nil, fmt.Errorf("reading the detector's calls: %w", m.err)
	}
	now := millis(m.opts.Clock.Now())
	members, err := m.rdb.ZRangeByScore(ctx, m.index(), &redis.ZRangeBy{Min: fmt.Sprintf("(%d", now), Max: "+inf"}).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the index of the detector's calls: %w", err)
	}
	var ids []callID
	var gone []any
	for _, mem := range members {
		ast, lid, ok := strings.Cut(mem, " ")
		if !ok || ast == "" || lid == "" || strings.Contains(lid, " ") {
			refused = append(refused, fmt.Errorf("%w: call index entry %q is not \"<asterisk id> <linkedid>\"; skipped", ErrInvalid, mem))
			continue
		}
		ids = append(ids, callID{ast, lid})
	}
	pipe := m.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		gets[i] = pipe.Get(ctx, m.key(id))
	}
	pipe.ZRemRangeByScore(ctx, m.index(), "-inf", fmt.Sprint(now))
	if _, err := pipe.Exec(ctx); err != nil && !isNilOrWrongType(err) {
		return nil, refused, fmt.Errorf("reading the detector's calls: %w", err)
	}
	for i, id := range ids {
		rec, err := gets[i].Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			gone = append(gone, id.member())
		case err != nil:
			refused = append(refused, fmt.Errorf("%w: call %s of asterisk %s: reading %s: %w; skipped",
				ErrInvalid, id.linkedID, id.asterisk, m.key(id), err))
		default:
			calls = append(calls, StoredCall{AsteriskID: id.asterisk, LinkedID: id.linkedID, Record: rec})
		}
	}
	if len(gone) > 0 {
		if err := m.rdb.ZRem(ctx, m.index(), gone...).Err(); err != nil && m.opts.OnError != nil {
			m.opts.OnError(fmt.Errorf("removing %d expired calls from the index: %w", len(gone), err))
		}
	}
	return calls, refused, nil
}

// isNilOrWrongType: a pipeline's error is its first command's; a missing or mistyped key is
// that command's own answer, read per command.
func isNilOrWrongType(err error) bool {
	return errors.Is(err, redis.Nil) || strings.HasPrefix(err.Error(), "WRONGTYPE")
}
