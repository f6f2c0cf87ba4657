package asynqbench

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
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
// Each command is a floorStep naming the feature it serves (floorFeatures), and a floor made
// without some features (newFloorWithout) sends neither their commands nor their keys and
// arguments: what it saves is what those features cost.
type floor struct {
	rdb                          redis.UniversalClient
	enqueueS, claimS, completeS  floorScript
	base, ready, delayed, open   string
	leases, done, forT, fence    string
	totals, events, window, wake string
}

// The features the floor's commands serve beyond the queue itself (a job hash, the ready
// index, the lease), by the names BenchmarkFeatureCost prints.
const (
	featDedupe     = "dedupe"
	featWake       = "wake"
	featPreference = "owner preference"
	featOpenIndex  = "open index"
	featExpiry     = "expiry"
	featTotals     = "totals"
	featWindow     = "kept-rate window"
	featEvents     = "events"
	featFencing    = "fencing"
	featDelayed    = "delayed"
	featDoneIndex  = "done index"
)

// floorFeatures are those features in the order the feature-cost table lists them, each with
// what it gives the product.
var floorFeatures = []struct{ name, gives string }{
	{featDedupe, "one open promise per number; a second request merges into it (GET, SET dedupe; GET, DEL on finish)"},
	{featEvents, "the event stream: the API's /events, webhooks, the audit trail (XADD made, claimed, failed)"},
	{featPreference, "owner preference without reading job hashes (ZADD, ZREM for:<target>)"},
	{featOpenIndex, "max open age, oldest first (ZADD, ZREM open; Store.Expire)"},
	{featExpiry, "a job ends by itself even if no daemon ever looks again, and a finished one after the retention (PEXPIRE ×2)"},
	{featTotals, "lifetime counters behind the metrics (HINCRBY totals ×2)"},
	{featWindow, "the promise-kept rate of a recent window (HINCRBY window, PEXPIRE on its first count)"},
	{featWake, "other daemons woken at once by a new promise (PUBLISH)"},
	{featFencing, "a stale daemon's writes refused after a reclaim (INCR fence)"},
	{featDelayed, "promises held until later become due (ZRANGEBYSCORE delayed)"},
	{featDoneIndex, "finished promises listed and swept by the retention (ZADD done)"},
}

// A floorStep is Lua for one or a few commands and the feature they serve ("" for the queue
// itself). It names keys and arguments as {name}: floorKeys are keys, other names arguments.
type floorStep struct{ feature, lua string }

var floorKeys = map[string]bool{"dedupe": true, "job": true, "wake": true, "ready": true, "for": true,
	"open": true, "totals": true, "events": true, "delayed": true, "fence": true, "leases": true,
	"done": true, "window": true}

var floorEnqueueSteps = []floorStep{
	{featDedupe, `redis.call('GET', {dedupe})`},
	{"", `redis.call('HSET', {job}, 'id', {id}, 'queue', {queue}, 'number', {number}, 'reasons', '["api"]',
  'targets', '["201"]', 'created', {now}, 'not_before', {now}, 'deadline', {deadline}, 'attempts', '0',
  'max_attempts', '3', 'state', 'pending', 'hn', '0', 'target', '201', 'owner', '201')`},
	{featWake, `redis.call('PUBLISH', {wake}, 'pending')`},
	{"", `redis.call('ZADD', {ready}, {deadline}, {id})`},
	{featPreference, `redis.call('ZADD', {for}, {deadline}, {id})`},
	{featOpenIndex, `redis.call('ZADD', {open}, {now}, {id})`},
	{featExpiry, `redis.call('PEXPIRE', {job}, {jobttl})`},
	{featDedupe, `redis.call('SET', {dedupe}, {id}, 'PX', {dedupettl})`},
	{featTotals, `redis.call('HINCRBY', {totals}, 'made', '1')`},
	{featEvents, `redis.call('XADD', {events}, 'MAXLEN', '~', '100000', '*', 'type', 'made', 'promise', {id},
  'number', {number}, 'at', {now}, 'agent', '', 'attempts', '', 'reason', 'api', 'reasons', '', 'target', '',
  'deadline', {deadline}, 'not_before', {now}, 'detail', '')`},
	{"", `return {'ok', {id}}`},
}

var floorClaimSteps = []floorStep{
	{featDelayed, `redis.call('ZRANGEBYSCORE', {delayed}, '-inf', {now}, 'LIMIT', '0', '100')`},
	{"", `local id = redis.call('ZPOPMIN', {ready})[1]
if not id then
  return {'err', 'EMPTY'}
end
local jk = {prefix} .. id
local v = redis.call('HMGET', jk, 'id', 'number', 'created', 'deadline', 'not_before', 'attempts',
  'max_attempts', 'reasons', 'targets', 'history', 'token', 'hn', 'name', 'target', 'owner', 'note',
  'at_risk_from_start', 'external_ref', 'src_asterisk', 'src_linkedid', 'src_channel', 'hold_until')
local token = '1'`},
	{featFencing, `token = redis.call('INCR', {fence})`},
	{featPreference, `redis.call('ZREM', {for}, id)`},
	{"", `redis.call('ZADD', {leases}, {expires}, id)
redis.call('HSET', jk, 'state', 'dialing', 'token', token, 'worker', {worker}, 'lease_expires', {expires},
  'dialled', '0', 'hn', '1', 'h:1', {hist})`},
	{featEvents, `redis.call('XADD', {events}, 'MAXLEN', '~', '100000', '*', 'type', 'claimed', 'promise', id,
  'number', v[2], 'at', {now}, 'agent', {worker}, 'attempts', '0', 'reason', '', 'reasons', '', 'target', '',
  'deadline', '', 'not_before', '', 'detail', '')`},
	{"", `v[11] = token
return {'ok', v}`},
}

var floorCompleteSteps = []floorStep{
	{"", `local v = redis.call('HMGET', {job}, 'state', 'token', 'number', 'deadline', 'attempts', 'max_attempts',
  'target', 'reasons', 'not_before', 'created', 'connected', 'worker', 'targets', 'hn')
redis.call('ZREM', {leases}, {id})`},
	{featOpenIndex, `redis.call('ZREM', {open}, {id})`},
	{"", `redis.call('HSET', {job}, 'state', 'failed', 'finished', {now}, 'lease_expires', '0',
  'hn', '2', 'h:2', {hist})`},
	{featDedupe, `redis.call('GET', {dedupe})
redis.call('DEL', {dedupe})`},
	{featDoneIndex, `redis.call('ZADD', {done}, {now}, {id})`},
	{featEvents, `redis.call('XADD', {events}, 'MAXLEN', '~', '100000', '*', 'type', 'failed', 'promise', {id},
  'number', v[3], 'at', {now}, 'agent', '', 'attempts', v[5], 'reason', 'api', 'reasons', v[8], 'target', v[7],
  'deadline', v[4], 'not_before', '', 'detail', 'bench')`},
	{featTotals, `redis.call('HINCRBY', {totals}, 'failed', '1')`},
	{featWindow, `if redis.call('HINCRBY', {window}, 'failed', '1') == 1 then
  redis.call('PEXPIRE', {window}, {windowttl})
end`},
	{featExpiry, `redis.call('PEXPIRE', {job}, {retention})`},
	{"", `return {'finished', v}`},
}

// floorScript is a script built from floor steps, with the names of the keys and arguments it
// is sent, in their KEYS and ARGV order.
type floorScript struct {
	script     *redis.Script
	keys, args []string
}

var floorName = regexp.MustCompile(`\{([a-z]+)\}`)

// buildFloorScript joins the steps of the features not left out, each {name} replaced by the
// KEYS or ARGV element it is sent as.
func buildFloorScript(steps []floorStep, without map[string]bool) floorScript {
	var fs floorScript
	refs := map[string]string{}
	var body strings.Builder
	for _, st := range steps {
		if without[st.feature] {
			continue
		}
		body.WriteString(floorName.ReplaceAllStringFunc(st.lua, func(m string) string {
			name := m[1 : len(m)-1]
			if ref, ok := refs[name]; ok {
				return ref
			}
			if floorKeys[name] {
				fs.keys = append(fs.keys, name)
				refs[name] = fmt.Sprintf("KEYS[%d]", len(fs.keys))
			} else {
				fs.args = append(fs.args, name)
				refs[name] = fmt.Sprintf("ARGV[%d]", len(fs.args))
			}
			return refs[name]
		}))
		body.WriteByte('\n')
	}
	fs.script = redis.NewScript(body.String())
	return fs
}

// run sends the script with the keys and arguments it names, taken from vals.
func (fs floorScript) run(ctx context.Context, rdb redis.UniversalClient, vals map[string]string) *redis.Cmd {
	keys := make([]string, len(fs.keys))
	for i, name := range fs.keys {
		keys[i] = vals[name]
	}
	args := make([]any, len(fs.args))
	for i, name := range fs.args {
		args[i] = vals[name]
	}
	return fs.script.Run(ctx, rdb, keys, args...)
}

// newFloor is the floor of every feature: the store's commands.
func newFloor(rdb redis.UniversalClient) *floor { return newFloorWithout(rdb) }

// newFloorWithout is the floor without the commands of the features named.
func newFloorWithout(rdb redis.UniversalClient, features ...string) *floor {
	without := map[string]bool{}
	for _, f := range features {
		without[f] = true
	}
	base := "floor:{" + queueName + "}:"
	return &floor{rdb: rdb, base: base,
		ready: base + "ready", delayed: base + "delayed", open: base + "open", leases: base + "leases",
		done: base + "done", forT: base + "for:201", fence: base + "fence", totals: base + "totals",
		events: base + "events", window: base + "window:1", wake: base + "wake",
		enqueueS:  buildFloorScript(floorEnqueueSteps, without),
		claimS:    buildFloorScript(floorClaimSteps, without),
		completeS: buildFloorScript(floorCompleteSteps, without)}
}

// errEmpty is a floor claim finding nothing ready.
var errEmpty = errors.New("floor: nothing ready")

// floorJob is what a floor claim hands to its complete.
type floorJob struct{ id, number string }

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func (f *floor) enqueue(ctx context.Context, i int) error {
	now := time.Now()
	id := ulid.Make().String()
	number := fmt.Sprintf("+3120%07d", i)
	return f.enqueueS.run(ctx, f.rdb, map[string]string{
		"dedupe": f.base + "dedupe:" + number, "job": f.base + "job:" + id, "wake": f.wake, "ready": f.ready,
		"for": f.forT, "open": f.open, "totals": f.totals, "events": f.events,
		"id": id, "queue": queueName, "number": number, "now": ms(now),
		"deadline":  ms(now.Add(time.Hour + time.Duration(i)*time.Millisecond)),
		"jobttl":    strconv.FormatInt((retention + 24*time.Hour).Milliseconds(), 10),
		"dedupettl": strconv.FormatInt((24*time.Hour + time.Hour).Milliseconds(), 10)}).Err()
}

func (f *floor) claim(ctx context.Context) (floorJob, error) {
	now := time.Now()
	v, err := f.claimS.run(ctx, f.rdb, map[string]string{
		"delayed": f.delayed, "ready": f.ready, "fence": f.fence, "for": f.forT, "leases": f.leases,
		"events": f.events, "now": ms(now), "prefix": f.base + "job:", "expires": ms(now.Add(time.Minute)),
		"worker": "w", "hist": ms(now) + "|claimed|worker=w"}).Slice()
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
	return f.completeS.run(ctx, f.rdb, map[string]string{
		"job": f.base + "job:" + j.id, "leases": f.leases, "open": f.open, "dedupe": f.base + "dedupe:" + j.number,
		"done": f.done, "events": f.events, "totals": f.totals, "window": f.window,
		"id": j.id, "now": ms(now), "hist": ms(now) + "|failed|bench",
		"retention": strconv.FormatInt(retention.Milliseconds(), 10),
		"windowttl": strconv.FormatInt((retention + 5*time.Minute).Milliseconds(), 10)}).Err()
}

// drain claims and completes with concurrency workers, as callbackd's drain does.
func (f *floor) drain(ctx context.Context, _, concurrency int) (time.Duration, error) {
	return drainWith(ctx, concurrency, f.claim, f.complete, errEmpty)
}
