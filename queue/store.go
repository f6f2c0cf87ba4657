package queue

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
)

// Errors callers tell apart with errors.Is. Every returned error wraps one of them with the
// job, queue or value concerned.
var (
	ErrUnknownQueue = errors.New("unknown queue")
	ErrInvalidQueue = errors.New("invalid queue name")
	ErrInvalid      = errors.New("invalid request")
	ErrNotFound     = errors.New("job not found")
	ErrWrongState   = errors.New("job is in the wrong state for this change")
	ErrStaleToken   = errors.New("fencing token is stale: the lease was lost")
	ErrOutcome      = errors.New("outcome contradicts the recorded connect time")
	ErrEmpty        = errors.New("no job is due")
	// ErrSkipped: a read left out a job whose record it could not decode (List, Page); the
	// jobs it could read are answered beside the error.
	ErrSkipped = errors.New("a job that cannot be read was left out")
)

// EmptyError is the ErrEmpty of a Claim that found due jobs but left every one it looked at to
// its owner (see ClaimOptions.Held). errors.Is(err, ErrEmpty) holds for it, so callers that only
// care whether they got a job need not know it exists.
type EmptyError struct {
	// HeldUntil is when the earliest of those holds ends: from then on this claimer may take
	// that job, so it is when to try again (unless something else becomes due sooner).
	HeldUntil time.Time
}

func (e *EmptyError) Error() string {
	return fmt.Sprintf("%v: the due jobs are held for their owners, the first until %s", ErrEmpty,
		e.HeldUntil.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
}

// Unwrap makes errors.Is(err, ErrEmpty) true.
func (e *EmptyError) Unwrap() error { return ErrEmpty }

// HoldEnds says when the earliest owner hold that made Claim return err ends; false when err
// is not such an answer (nothing was due at all, or Claim failed otherwise).
func HoldEnds(err error) (time.Time, bool) {
	var e *EmptyError
	if errors.As(err, &e) {
		return e.HeldUntil, true
	}
	return time.Time{}, false
}

// Defaults for Options fields left zero.
const (
	DefaultPrefix     = "callbackd"
	DefaultRetention  = 720 * time.Hour
	DefaultMaxOpenAge = 14 * 24 * time.Hour
	// DefaultWaitTimeout bounds the wait for replicas when Options.WaitReplicas is set: a
	// healthy replica on the same network acknowledges in about a millisecond.
	DefaultWaitTimeout = 100 * time.Millisecond
	// MaxWaitTimeout stays under go-redis' default read timeout (3s), which a longer WAIT
	// would run into and fail.
	MaxWaitTimeout = 2 * time.Second
)

const (
	promoteBatch   = 100             // delayed jobs a single Claim moves to ready
	preferWindow   = 32              // due jobs a Claim may pass over to find the claimer's own or an unheld one
	maxHeld        = 4096            // owners one Claim may hold jobs for
	outcomeBucket  = 5 * time.Minute // Outcomes' resolution; the scripts' WINDOW_BUCKET_MS (luaConstants)
	reclaimBatch   = 100             // expired leases one Reclaim script handles
	listCap        = 10000           // delayed or leased jobs List reads
	maxListLimit   = 1000            // most jobs one List returns
	maxFieldLength = 256             // name, target, source fields, detail
	maxAttempts    = 100             // a sanity bound, not a policy
	maxLease       = 24 * time.Hour
	// dedupeOutlives is how much longer than the max open age a number's dedupe key lives, so
	// that it ends even if no daemon ever looks again but never before its promise expired.
	dedupeOutlives = time.Hour
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// Options configures a Store.
type Options struct {
	// Prefix starts every key; DefaultPrefix when empty.
	Prefix string
	// Clock supplies "now" to every script; clock.Real when nil.
	Clock clock.Clock
	// Retention is how long a finished promise stays readable; DefaultRetention when zero.
	Retention time.Duration
	// Queues are the known queue names; Enqueue to any other is ErrUnknownQueue.
	Queues []string
	// MaxOpenAge is, per queue, how long a promise may stay open before Expire ends it;
	// DefaultMaxOpenAge for a queue not in it.
	MaxOpenAge map[string]time.Duration
	// OnQuarantine, when set, hears of every broken job Claim or Reclaim moved aside, once:
	// the daemon logs it. Called without any lock, from the caller's goroutine.
	OnQuarantine func(Quarantined)
	// WaitReplicas, when positive, makes the writes a failover must not lose — Enqueue (the
	// promise), MarkConnected and MarkAdopted (the customer talked: never re-queue it) — wait
	// until that many replicas have them (Redis WAIT). Replication is asynchronous, so without
	// it a primary that dies loses the writes its replicas had not received yet.
	WaitReplicas int
	// WaitTimeout bounds that wait; DefaultWaitTimeout when zero, at most MaxWaitTimeout.
	WaitTimeout time.Duration
	// OnUnreplicated, when set, hears of every such write fewer replicas acknowledged in time.
	// The write is made on the primary all the same (the caller gets its result, not an
	// error): it is at risk only if the primary dies before a replica catches up.
	OnUnreplicated func(Unreplicated)

	// strictSlots makes Redis 7 check that scripts touch only their declared slot (tests).
	strictSlots bool
}

// Store is the promise store. It is safe for concurrent use; all coordination between
// workers (even in different processes) happens inside Redis scripts.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	clk       clock.Clock
	retention time.Duration
	queues    map[string]bool
	maxAge    map[string]time.Duration
	sc        scripts
	onQuar    func(Quarantined)
	replicas  int
	waitFor   time.Duration
	onUnrepl  func(Unreplicated)
}

// The writes Options.WaitReplicas applies to, as Unreplicated.Write names them.
const (
	WriteEnqueue   = "enqueue"
	WriteConnected = "connected"
	WriteAdopted   = "adopted"
)

// Unreplicated is a write that fewer replicas than Options.WaitReplicas acknowledged within
// Options.WaitTimeout.
type Unreplicated struct {
	Write     string // WriteEnqueue, WriteConnected or WriteAdopted
	Queue, ID string
	// Acked is how many replicas did acknowledge it; Wanted is Options.WaitReplicas.
	Acked, Wanted int
	// Err is why the replicas could not be asked, when WAIT itself failed.
	Err error
}

// Quarantined is a job moved out of every index of its queue because it could not be used: its
// hash is gone, lacks a field every transition reads, or does not decode. It stays in the
// queue's dead-letter hash (<prefix>:{Q}:quarantine, id → {at, reason}) for an operator.
type Quarantined struct {
	Queue, ID, Reason string
}

// quarantined reports the {id, reason, ...} pairs of a script reply to the hook.
func (s *Store) quarantined(queue string, reply any) {
	pairs, _ := reply.([]any)
	for i := 0; i+1 < len(pairs); i += 2 {
		id, _ := pairs[i].(string)
		reason, _ := pairs[i+1].(string)
		if s.onQuar != nil {
			s.onQuar(Quarantined{Queue: queue, ID: id, Reason: reason})
		}
	}
}

// New returns a Store on rdb. It checks the options and talks to Redis only when used.
func New(rdb redis.UniversalClient, opts Options) (*Store, error) {
	if rdb == nil {
		return nil, fmt.Errorf("creating queue store: %w: no Redis client", ErrInvalid)
	}
	s := &Store{rdb: rdb, prefix: opts.Prefix, clk: opts.Clock, retention: opts.Retention, onQuar: opts.OnQuarantine,
		queues: map[string]bool{}, maxAge: map[string]time.Duration{},
		replicas: opts.WaitReplicas, waitFor: opts.WaitTimeout, onUnrepl: opts.OnUnreplicated}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(s.prefix) {
		return nil, fmt.Errorf("creating queue store: %w: key prefix %q must be 1-64 of A-Z a-z 0-9 _ . : - (braces are Redis Cluster hash tags)", ErrInvalid, s.prefix)
	}
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	if s.retention == 0 {
		s.retention = DefaultRetention
	}
	if s.retention < time.Millisecond {
		return nil, fmt.Errorf("creating queue store: %w: retention %v must be positive", ErrInvalid, s.retention)
	}
	if s.replicas < 0 {
		return nil, fmt.Errorf("creating queue store: %w: replicas to wait for %d must not be negative", ErrInvalid, s.replicas)
	}
	if s.waitFor == 0 {
		s.waitFor = DefaultWaitTimeout
	}
	if s.waitFor < time.Millisecond || s.waitFor > MaxWaitTimeout {
		// WAIT's timeout is in milliseconds and 0 would wait for ever.
		return nil, fmt.Errorf("creating queue store: %w: wait timeout %v must be from 1ms to %v", ErrInvalid, s.waitFor, MaxWaitTimeout)
	}
	if len(opts.Queues) == 0 {
		return nil, fmt.Errorf("creating queue store: %w: no queues configured", ErrInvalid)
	}
	for _, q := range opts.Queues {
		if err := ValidateQueueName(q); err != nil {
			return nil, fmt.Errorf("creating queue store: %w", err)
		}
		if s.queues[q] {
			return nil, fmt.Errorf("creating queue store: %w: queue %q is listed twice", ErrInvalid, q)
		}
		s.queues[q] = true
		s.maxAge[q] = DefaultMaxOpenAge
	}
	for q, d := range opts.MaxOpenAge {
		if !s.queues[q] {
			return nil, fmt.Errorf("creating queue store: %w: max open age for %q, which is not a queue", ErrInvalid, q)
		}
		if d < time.Millisecond {
			return nil, fmt.Errorf("creating queue store: %w: max open age %v of queue %q must be positive", ErrInvalid, d, q)
		}
		s.maxAge[q] = d
	}
	var err error
	if s.sc, err = loadScripts(opts.strictSlots); err != nil {
		return nil, fmt.Errorf("creating queue store: %w", err)
	}
	return s, nil
}

// ValidateQueueName reports why name cannot be a queue name, or nil.
func ValidateQueueName(name string) error {
	if strings.ContainsAny(name, "{}") {
		return fmt.Errorf("%w: %q contains '{' or '}', which Redis Cluster reads as a hash tag", ErrInvalidQueue, name)
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %q must be 1-64 characters of A-Z a-z 0-9 _ . -", ErrInvalidQueue, name)
	}
	return nil
}

// Load sends the queue scripts to Redis as one function library (FUNCTION LOAD), which calls
// then use, or, where the server refuses it (Redis 6, an ACL without FUNCTION), as scripts
// (SCRIPT LOAD), so that the first call of each operation is already one FCALL or EVALSHA.
// Optional: without it every call is a script, loaded on first use. Functions tells which.
func (s *Store) Load(ctx context.Context) error {
	if s.sc.lib.load(ctx, s.rdb) == nil {
		return nil
	}
	for _, sc := range s.sc.all() {
		if err := sc.sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("loading queue scripts into Redis: %w", err)
		}
	}
	return nil
}

// Functions answers whether the store's calls go to its function library, and if not, what
// Redis answered when the library was loaded or called (nil before Load).
func (s *Store) Functions() (bool, error) {
	if s.sc.lib.on.Load() {
		return true, nil
	}
	if why := s.sc.lib.why.Load(); why != nil {
		return false, *why
	}
	return false, nil
}

// Queues returns the known queue names.
func (s *Store) Queues() []string {
	out := make([]string, 0, len(s.queues))
	for q := range s.queues {
		out = append(out, q)
	}
	sort.Strings(out)
	return out
}

func (s *Store) checkQueue(q string) error {
	if s.queues[q] {
		// Every configured queue's name was validated by New; the hot path need not match the
		// pattern again.
		return nil
	}
	if err := ValidateQueueName(q); err != nil {
		return err
	}
	if !s.queues[q] {
		return fmt.Errorf("%w: %q", ErrUnknownQueue, q)
	}
	return nil
}

func (s *Store) checkRef(ref Ref) error {
	if err := s.checkQueue(ref.Queue); err != nil {
		return err
	}
	if _, err := ulid.ParseStrict(ref.ID); err != nil {
		return fmt.Errorf("%w: job id %q is not a ULID", ErrInvalid, ref.ID)
	}
	return nil
}

// keyspace is the layout of one queue's keys, all under the hash tag {queue}.
type keyspace struct{ base string }

func (s *Store) ks(q string) keyspace { return keyspace{base: s.prefix + ":{" + q + "}:"} }

func (k keyspace) job(id string) string        { return k.base + "job:" + id }
func (k keyspace) dedupe(number string) string { return k.base + "dedupe:" + number }
func (k keyspace) history(id string) string    { return k.base + "history:" + id }
func (k keyspace) forTarget(t string) string   { return k.base + "for:" + t }
func (k keyspace) ready() string               { return k.base + "ready" }
func (k keyspace) delayed() string             { return k.base + "delayed" }
func (k keyspace) leases() string              { return k.base + "leases" }
func (k keyspace) done() string                { return k.base + "done" }
func (k keyspace) totals() string              { return k.base + "totals" }
func (k keyspace) quarantine() string          { return k.base + "quarantine" }
func (k keyspace) open() string                { return k.base + "open" }
func (k keyspace) window(bucket int64) string {
	return k.base + "window:" + strconv.FormatInt(bucket, 10)
}

// common is the KEYS of a queue's script: the job-key prefix, from which the script names
// the queue's other keys (scripts/common.lua), then the script's own.
func (k keyspace) common(extra ...string) []string {
	return append([]string{k.base + "job:"}, extra...)
}

// run executes a script with the common ARGV (now, retention, queue) followed by args.
func (s *Store) run(ctx context.Context, sc *script, q string, keys []string, now time.Time, args ...any) ([]any, error) {
	argv := append([]any{millis(now), s.retention.Milliseconds(), q}, args...)
	v, err := sc.Run(ctx, s.rdb, keys, argv...).Result()
	if err != nil {
		return nil, err
	}
	res, ok := v.([]any)
	if !ok || len(res) == 0 {
		return nil, fmt.Errorf("unexpected script reply %T", v)
	}
	return res, nil
}

// runReplicated is run for a write Options.WaitReplicas applies to. With it set, the script and
// a WAIT go down one connection in one round trip: WAIT counts the replicas that have this
// connection's writes, so on another connection it would answer for someone else's. A WAIT
// that fails after the script succeeded is in the ack, not the error: the write stands.
func (s *Store) runReplicated(ctx context.Context, sc *script, q string, keys []string, now time.Time, args ...any) ([]any, ack, error) {
	if s.replicas == 0 {
		res, err := s.run(ctx, sc, q, keys, now, args...)
		return res, ack{n: -1}, err
	}
	var conn redis.Cmdable = s.rdb
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		// A keyless WAIT would go to any node; it must go to the primary of the script's slot.
		node, err := c.MasterForKey(ctx, keys[0])
		if err != nil {
			return nil, ack{}, fmt.Errorf("finding the primary of %s: %w", keys[0], err)
		}
		conn = node
	}
	argv := append([]any{millis(now), s.retention.Milliseconds(), q}, args...)
	// how: 0 the function (while the library is on), 1 EVALSHA, 2 EVAL.
	send := func(how int) (ev, wait *redis.Cmd) {
		// The errors are the commands' own, read below.
		_, _ = conn.Pipelined(ctx, func(p redis.Pipeliner) error {
			switch how {
			case 0:
				ev = p.FCall(ctx, sc.fn, keys, argv...)
			case 1:
				ev = sc.sc.EvalSha(ctx, p, keys, argv...)
			default:
				ev = sc.sc.Eval(ctx, p, keys, argv...)
			}
			// A pipeline has no Wait method; WAIT takes milliseconds.
			wait = p.Do(ctx, "wait", s.replicas, s.waitFor.Milliseconds())
			return nil
		})
		return ev, wait
	}
	how := 1
	if sc.lib.on.Load() {
		how = 0
	}
	ev, wait := send(how)
	if how == 0 && sc.lib.missed(ctx, s.rdb, ev.Err()) {
		how = 1
		ev, wait = send(how)
	}
	if how == 1 && redis.HasErrorPrefix(ev.Err(), "NOSCRIPT") {
		ev, wait = send(2)
	}
	v, err := ev.Result()
	if err != nil {
		return nil, ack{}, err
	}
	res, ok := v.([]any)
	if !ok || len(res) == 0 {
		return nil, ack{}, fmt.Errorf("unexpected script reply %T", v)
	}
	n, err := wait.Int()
	if err != nil {
		return res, ack{err: fmt.Errorf("asking the replicas whether they have the write: %w", err)}, nil
	}
	return res, ack{n: int(n)}, nil
}

// ack is what WAIT answered: n replicas have the write (-1: none were asked for), or err.
type ack struct {
	n   int
	err error
}

// replicated tells OnUnreplicated of a write to ref that too few replicas acknowledged.
func (s *Store) replicated(write string, ref Ref, a ack) {
	if a.n < 0 || (a.n >= s.replicas && a.err == nil) || s.onUnrepl == nil {
		return
	}
	s.onUnrepl(Unreplicated{Write: write, Queue: ref.Queue, ID: ref.ID, Acked: a.n, Wanted: s.replicas, Err: a.err})
}

// scriptError turns a script's {'err', code, detail} into the matching sentinel error.
func scriptError(res []any, what string) error {
	code, _ := res[1].(string)
	detail := ""
	if len(res) > 2 {
		detail, _ = res[2].(string)
	}
	switch code {
	case "NOTFOUND":
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	case "STALE":
		return fmt.Errorf("%s: %w (job is now %s)", what, ErrStaleToken, detail)
	case "STATE":
		return fmt.Errorf("%s: %w: job is %s", what, ErrWrongState, detail)
	case "OUTCOME":
		return fmt.Errorf("%s: %w: %s", what, ErrOutcome, detail)
	case "EMPTY":
		if detail == "" {
			return fmt.Errorf("%s: %w", what, ErrEmpty)
		}
		ms, err := parseInt(detail)
		if err != nil {
			return fmt.Errorf("%s: %w (unreadable hold end %q: %v)", what, ErrEmpty, detail, err)
		}
		return fmt.Errorf("%s: %w", what, &EmptyError{HeldUntil: time.UnixMilli(ms).UTC()})
	}
	return fmt.Errorf("%s: unexpected script error %q %q", what, code, detail)
}

// jobResult decodes the {'ok', job} or {'finished', values} answer of a script, or maps its
// error.
func jobResult(res []any, what string) (Job, error) {
	if status, _ := res[0].(string); status == "err" {
		return Job{}, scriptError(res, what)
	}
	if len(res) < 2 {
		return Job{}, fmt.Errorf("%s: script reply has no job", what)
	}
	decode := jobFromReply
	if status, _ := res[0].(string); status == "finished" {
		decode = jobFromFinished
	}
	j, err := decode(res[1])
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	return j, nil
}

func newID(now time.Time) (string, error) {
	id, err := ulid.New(ulid.Timestamp(now), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("making job id: %w", err)
	}
	return id.String(), nil
}

// CheckText refuses text that would be unreadable in a log line or an agent's display, or
// longer than the store keeps; field names the text in the error. The API checks a request's
// texts with it before the store does, to name the field in its answer.
func CheckText(field, v string) error {
	if len(v) > maxFieldLength {
		return fmt.Errorf("%w: %s is %d bytes, at most %d allowed", ErrInvalid, field, len(v), maxFieldLength)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s contains the control character %U", ErrInvalid, field, r)
		}
	}
	return nil
}
