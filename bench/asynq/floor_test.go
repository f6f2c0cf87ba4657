package asynqbench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"
)

// floor runs, per enqueue, claim and complete, one script that sends exactly the commands
// callbackd's store sends for it on the side-by-side's path (a plain claim, a promise for one
// target, a finish as failed), with values of the same sizes and no Lua besides the calls:
// no checks, no derived keys, no tables but the reply. What Redis spends on it is what any
// script set with callbackd's features would spend at least, however its logic were written,
// so it tells whether a target is within reach of the features or needs one of them gone.
// Where each command comes from:
//
//	enqueue  GET dedupe, HSET job, PUBLISH wake, ZADD ready, ZADD for:<target> (owner
//	         preference), ZADD open (max open age), PEXPIRE job, SET dedupe, HINCRBY totals,
//	         XADD made
//	claim    ZRANGEBYSCORE delayed (delayed promises become due), ZPOPMIN ready, HMGET job,
//	         INCR fence (fencing token), ZREM for:<target>, ZADD leases, HSET job, XADD claimed
//	complete HMGET job, ZREM leases, ZREM open, HSET job, GET + DEL dedupe, ZADD done (the
//	         finished index the retention sweep and the API read), XADD failed, HINCRBY totals,
//	         HINCRBY window (the promise-kept rate's five-minute bucket; PEXPIRE on its first
//	         count), PEXPIRE job
type floor struct {
	rdb                                 redis.UniversalClient
	enqueueS, claimS, completeS         *redis.Script
	base                                string
	ready, delayed, open, leases, done  string
	forT, fence, totals, events, window string
}

func newFloor(rdb redis.UniversalClient) *floor {
	base := "floor:{" + queueName + "}:"
	return &floor{rdb: rdb, base: base,
		ready: base + "ready", delayed: base + "delayed", open: base + "open", leases: base + "leases",
		done: base + "done", forT: base + "for:201", fence: base + "fence", totals: base + "totals",
		events: base + "events", window: base + "window:1",
		enqueueS:  redis.NewScript(floorEnqueue),
		claimS:    redis.NewScript(floorClaim),
		completeS: redis.NewScript(floorComplete)}
}

const floorEnqueue = `
redis.call('GET', KEYS[1])
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'queue', ARGV[2], 'number', ARGV[3], 'reasons', '["api"]',
  'targets', '["201"]', 'created', ARGV[4], 'not_before', ARGV[4], 'deadline', ARGV[5], 'attempts', '0',
  'max_attempts', '3', 'state', 'pending', 'hn', '0', 'target', '201', 'owner', '201')
redis.call('PUBLISH', KEYS[3], 'pending')
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[7])
redis.call('HINCRBY', KEYS[7], 'made', '1')
redis.call('XADD', KEYS[8], 'MAXLEN', '~', '100000', '*', 'type', 'made', 'promise', ARGV[1], 'number', ARGV[3],
  'at', ARGV[4], 'agent', '', 'attempts', '', 'reason', 'api', 'reasons', '', 'target', '', 'deadline', ARGV[5],
  'not_before', ARGV[4], 'detail', '')
return {'ok', ARGV[1]}`

const floorClaim = `
redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', '0', '100')
local id = redis.call('ZPOPMIN', KEYS[2])[1]
if not id then
  return {'err', 'EMPTY'}
end
local jk = ARGV[2] .. id
local v = redis.call('HMGET', jk, 'id', 'number', 'created', 'deadline', 'not_before', 'attempts',
  'max_attempts', 'reasons', 'targets', 'history', 'token', 'hn', 'name', 'target', 'owner', 'note',
  'at_risk_from_start', 'external_ref', 'src_asterisk', 'src_linkedid', 'src_channel', 'hold_until')
local token = redis.call('INCR', KEYS[3])
redis.call('ZREM', KEYS[4], id)
redis.call('ZADD', KEYS[5], ARGV[3], id)
redis.call('HSET', jk, 'state', 'dialing', 'token', token, 'worker', ARGV[4], 'lease_expires', ARGV[3],
  'dialled', '0', 'hn', '1', 'h:1', ARGV[5])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', '100000', '*', 'type', 'claimed', 'promise', id, 'number', v[2],
  'at', ARGV[1], 'agent', ARGV[4], 'attempts', '0', 'reason', '', 'reasons', '', 'target', '', 'deadline', '',
  'not_before', '', 'detail', '')
v[11] = token
return {'ok', v}`

const floorComplete = `
local v = redis.call('HMGET', KEYS[1], 'state', 'token', 'number', 'deadline', 'attempts', 'max_attempts',
  'target', 'reasons', 'not_before', 'created', 'connected', 'worker', 'targets', 'hn')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'failed', 'finished', ARGV[2], 'lease_expires', '0',
  'hn', '2', 'h:2', ARGV[3])
redis.call('GET', KEYS[4])
redis.call('DEL', KEYS[4])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', '100000', '*', 'type', 'failed', 'promise', ARGV[1], 'number', v[3],
  'at', ARGV[2], 'agent', '', 'attempts', v[5], 'reason', 'api', 'reasons', v[8], 'target', v[7],
  'deadline', v[4], 'not_before', '', 'detail', 'bench')
redis.call('HINCRBY', KEYS[7], 'failed', '1')
if redis.call('HINCRBY', KEYS[8], 'failed', '1') == 1 then
  redis.call('PEXPIRE', KEYS[8], ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'finished', v}`

// errEmpty is a floor claim finding nothing ready.
var errEmpty = errors.New("floor: nothing ready")

// floorJob is what a floor claim hands to its complete.
type floorJob struct{ id, number string }

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func (f *floor) enqueue(ctx context.Context, i int) error {
	now := time.Now()
	id := ulid.Make().String()
	number := fmt.Sprintf("+3120%07d", i)
	return f.enqueueS.Run(ctx, f.rdb,
		[]string{f.base + "dedupe:" + number, f.base + "job:" + id, f.base + "wake", f.ready, f.forT, f.open,
			f.totals, f.events},
		id, queueName, number, ms(now), ms(now.Add(time.Hour+time.Duration(i)*time.Millisecond)),
		strconv.FormatInt((retention+24*time.Hour).Milliseconds(), 10),
		strconv.FormatInt((24*time.Hour+time.Hour).Milliseconds(), 10)).Err()
}

func (f *floor) claim(ctx context.Context) (floorJob, error) {
	now := time.Now()
	v, err := f.claimS.Run(ctx, f.rdb, []string{f.delayed, f.ready, f.fence, f.forT, f.leases, f.events},
		ms(now), f.base+"job:", ms(now.Add(time.Minute)), "w", ms(now)+"|claimed|worker=w").Slice()
	if err != nil {
		return floorJob{}, fmt.Errorf("floor claim: %w", err)
	}
	if len(v) < 2 || v[0] != "ok" {
		return floorJob{}, errEmpty
	}
	vals, ok := v[1].([]any)
	if !ok || len(vals) < 2 {
		return floorJob{}, fmt.Errorf("floor claim: reply %v", v)
	}
	id, _ := vals[0].(string)
	number, _ := vals[1].(string)
	return floorJob{id: id, number: number}, nil
}

func (f *floor) complete(ctx context.Context, j floorJob) error {
	now := time.Now()
	return f.completeS.Run(ctx, f.rdb,
		[]string{f.base + "job:" + j.id, f.leases, f.open, f.base + "dedupe:" + j.number, f.done, f.events,
			f.totals, f.window},
		j.id, ms(now), ms(now)+"|failed|bench", strconv.FormatInt(retention.Milliseconds(), 10),
		strconv.FormatInt((retention+5*time.Minute).Milliseconds(), 10)).Err()
}

// drain claims and completes with concurrency workers, as callbackd's drain does.
func (f *floor) drain(ctx context.Context, _, concurrency int) (time.Duration, error) {
	return drainWith(ctx, concurrency, f.claim, f.complete, errEmpty)
}
