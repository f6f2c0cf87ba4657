package webhook

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ledger is one endpoint's delivery bookkeeping on one queue's stream. Its keys share the
// stream's hash tag, so each script below is one atomic step even on Redis Cluster:
//
//	<stream>:webhook:<endpoint>:attempts  hash   <entry>/first, <entry>/n, <entry>/last
//	<stream>:webhook:<endpoint>:due       zset   entry → when it may be tried next (ms, daemon clock):
//	                                             the retry time, or the end of a running attempt's lease
//	<stream>:webhook:<endpoint>:dead      stream the dead letters
//
// An entry is acknowledged in the group only when it is finished (delivered, skipped or dead);
// until then it stays pending, and the due set says who may try it when. None of these keys
// holds a number: erasing a customer needs nothing from them.
type ledger struct {
	rdb                      redis.UniversalClient
	stream, group            string
	attempts, due, deadLists string
}

func newLedger(rdb redis.UniversalClient, stream, endpoint string) ledger {
	base := stream + ":webhook:" + endpoint
	return ledger{rdb: rdb, stream: stream, group: GroupPrefix + endpoint,
		attempts: base + ":attempts", due: base + ":due", deadLists: base + ":dead"}
}

// Attempt states begin reports.
const (
	beginGo   = "go"   // this caller makes the attempt
	beginBusy = "busy" // another attempt holds it, or its retry is not due yet
	beginGone = "gone" // already acknowledged: nothing to do
	// beginErased: still pending, but its entry is no longer in the stream (erased with its
	// customer, or trimmed): acknowledged now, not to be sent.
	beginErased = "erased"
)

// beginScript takes an entry for one attempt: only while it is still pending in the group, still
// in the stream and not held by another attempt's lease or waiting for its retry time. The
// entry read earlier (a batch waits while the endpoint answers the ones before it) may have been
// erased with its customer since: this last look before the request keeps it from being sent.
// The first attempt's time is kept, so retry_for is counted from it whichever daemon makes the
// later ones.
var beginScript = redis.NewScript(`
local id, now, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) == 0 then
  redis.call('HDEL', KEYS[2], id .. '/first', id .. '/n', id .. '/last')
  redis.call('ZREM', KEYS[3], id)
  return {'gone'}
end
local due = redis.call('ZSCORE', KEYS[3], id)
if due and tonumber(due) > now then return {'busy'} end
if #redis.call('XRANGE', KEYS[1], id, id) == 0 then
  redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('HDEL', KEYS[2], id .. '/first', id .. '/n', id .. '/last')
  redis.call('ZREM', KEYS[3], id)
  return {'erased'}
end
local first = redis.call('HGET', KEYS[2], id .. '/first')
if not first then
  first = ARGV[3]
  redis.call('HSET', KEYS[2], id .. '/first', first)
end
local n = redis.call('HINCRBY', KEYS[2], id .. '/n', 1)
redis.call('ZADD', KEYS[3], now + lease, id)
return {'go', first, tostring(n)}
`)

// begin takes entry id for an attempt lasting at most lease; first is the time of the
// entry's first attempt and n this attempt's number (1 for the first).
func (l ledger) begin(ctx context.Context, id string, now time.Time, lease time.Duration) (state string, first time.Time, n int, err error) {
	res, err := beginScript.Run(ctx, l.rdb, []string{l.stream, l.attempts, l.due},
		l.group, id, now.UnixMilli(), lease.Milliseconds()).StringSlice()
	if err != nil {
		return "", time.Time{}, 0, fmt.Errorf("taking event %s for an attempt: %w", id, err)
	}
	if len(res) == 0 {
		return "", time.Time{}, 0, fmt.Errorf("taking event %s for an attempt: empty reply", id)
	}
	if res[0] != beginGo {
		return res[0], time.Time{}, 0, nil
	}
	if len(res) != 3 {
		return "", time.Time{}, 0, fmt.Errorf("taking event %s for an attempt: reply %q", id, res)
	}
	ms, err1 := strconv.ParseInt(res[1], 10, 64)
	n, err2 := strconv.Atoi(res[2])
	if err := errors.Join(err1, err2); err != nil {
		return "", time.Time{}, 0, fmt.Errorf("taking event %s for an attempt: %w", id, err)
	}
	return beginGo, time.UnixMilli(ms), n, nil
}

// done acknowledges entry id and forgets its attempts: delivered, or not to be sent.
func (l ledger) done(ctx context.Context, id string) error {
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, l.stream, l.group, id)
		p.HDel(ctx, l.attempts, id+"/first", id+"/n", id+"/last")
		p.ZRem(ctx, l.due, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("acknowledging event %s: %w", id, err)
	}
	return nil
}

// retryScript records a failed attempt and when the next may be made, unless the entry was
// finished meanwhile (then it stays finished).
var retryScript = redis.NewScript(`
local id = ARGV[2]
if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) == 0 then return 0 end
redis.call('HSET', KEYS[2], id .. '/last', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], id)
return 1
`)

func (l ledger) retry(ctx context.Context, id string, next time.Time, last string) error {
	err := retryScript.Run(ctx, l.rdb, []string{l.stream, l.attempts, l.due}, l.group, id, next.UnixMilli(), last).Err()
	if err != nil {
		return fmt.Errorf("scheduling the retry of event %s: %w", id, err)
	}
	return nil
}

// release gives an attempt's lease back when it was cut short (the daemon is stopping), so
// another daemon may try the entry at once instead of after the lease.
func (l ledger) release(ctx context.Context, id string, now time.Time) error {
	if err := l.rdb.ZAddXX(ctx, l.due, redis.Z{Score: float64(now.UnixMilli()), Member: id}).Err(); err != nil {
		return fmt.Errorf("giving back event %s: %w", id, err)
	}
	return nil
}

// deadScript moves a pending entry to the dead letters and acknowledges it, in one step.
var deadScript = redis.NewScript(`
local id = ARGV[2]
if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) == 0 then return 0 end
local n = redis.call('HGET', KEYS[2], id .. '/n') or '0'
local first = redis.call('HGET', KEYS[2], id .. '/first') or ''
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[4], 'stream_id', id, 'type', ARGV[5],
  'promise', ARGV[6], 'reason', ARGV[7], 'last', ARGV[8], 'attempts', n, 'first_attempt', first, 'at', ARGV[9])
redis.call('XACK', KEYS[1], ARGV[1], id)
redis.call('HDEL', KEYS[2], id .. '/first', id .. '/n', id .. '/last')
redis.call('ZREM', KEYS[3], id)
return 1
`)

// deadLetter is what the dead-letter stream keeps of an event given up on.
type deadLetter struct {
	event, streamID, typ, promise string
	reason, last                  string
	at                            time.Time
}

func (l ledger) dead(ctx context.Context, d deadLetter) error {
	err := deadScript.Run(ctx, l.rdb, []string{l.stream, l.attempts, l.due, l.deadLists}, l.group, d.streamID,
		deadLetterMax, d.event, d.typ, d.promise, d.reason, d.last, d.at.UnixMilli()).Err()
	if err != nil {
		return fmt.Errorf("dead-lettering event %s: %w", d.streamID, err)
	}
	return nil
}

// scheduled reports whether entry id has an attempt behind it (it is in the due set).
func (l ledger) scheduled(ctx context.Context, ids []string) ([]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	scores, err := l.rdb.ZMScore(ctx, l.due, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the due retries: %w", err)
	}
	out := make([]bool, len(ids))
	for i, s := range scores {
		// go-redis reports a missing member as 0; no real due time is the epoch.
		out[i] = s != 0
	}
	return out, nil
}
