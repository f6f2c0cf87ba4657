// Package queue is the durable store of callback promises, kept in Redis.
//
// A promise (Job) is made by Enqueue, leased by Claim to one worker at a time, and finished by
// Complete, Retry (out of attempts), Cancel, Resolve or Reclaim. Every state change is one Lua
// script (scripts/*.lua, embedded), so it is atomic and costs one round trip; a promise's whole
// life (enqueue, claim, complete) is three.
//
// States and transitions:
//
//	                 Enqueue (a request for a number that already has an open promise
//	                    │     in the queue merges into it instead: earliest deadline kept)
//	                    ▼
//	   ┌──────────► pending ◄───────────────┐
//	   │  Retry /       │                   │ Reclaim: lease expired
//	   │  Release       │ Claim             │ (counts as an attempt)
//	   │                ▼                   │
//	   ├─────────── dialing ────────────────┘
//	   │                │ MarkConnected
//	   │                ▼
//	   └────────── connected
//	                    │
//	      Complete ─────┼──────► kept   (connected no later than the deadline)
//	      or Reclaim    └──────► late   (connected after it)
//	      (lease expired: the customer was reached, so no second call; no attempt used)
//
//	dialing | connected ── Complete ──► unreachable | failed | expired | cancelled | resolved
//	dialing | connected ── Retry on the last attempt ──► unreachable
//	dialing ── Reclaim of the last attempt ──► unreachable
//	pending | dialing | connected ── Cancel ──► cancelled
//	pending | dialing | connected ── Resolve (the customer reached us) ──► resolved
//
// Any other change is refused with ErrWrongState; a change by a worker whose lease was
// reclaimed (or that never held it) is refused with ErrStaleToken.
//
// Claim takes the due job with the earliest deadline, with two exceptions that keep a customer
// with the person they tried to reach, each only during the job's preference window (a share
// of its life, created → deadline): a job naming the claimer among its targets (Prefer) is
// taken first, and a job whose owner the claimer lists in Held (an agent busy for now, not
// gone) is left to that owner. When holds leave nothing to take, the ErrEmpty is an
// *EmptyError that says when the first hold ends.
//
// Reads for the dialer and metrics, none of which changes anything: Stats (set sizes, leased
// jobs split into dialing and connected, lifetime counters), Outcomes (finished promises per
// final state in a recent window, in five-minute buckets), Head (the deadline Claim would take
// next), NextDue and NextLeaseExpiry (when to wake up).
//
// Keys, all of queue Q under the Redis Cluster hash tag {Q} (prefix default "callbackd"):
//
//	<prefix>:{Q}:job:<id>       hash: the job; reasons and targets as JSON arrays; its history
//	                            as fields h:1, h:2, … ("<at ms>|<result>|<detail>" each, hn
//	                            counting them), written by the HSET of the change it records;
//	                            a finished job's outcome is its state (earlier versions wrote
//	                            an outcome field too); every value short, so Redis keeps it
//	                            compact
//	<prefix>:{Q}:history:<id>   list: the history of a job made before it moved into the hash
//	                            (no hn field); expires with the job
//	<prefix>:{Q}:ready          zset id → deadline ms: due now, claimed earliest deadline first
//	<prefix>:{Q}:for:<target>   zset id → deadline ms: the ready jobs naming target (Prefer);
//	                            gone when none does. for-indexed: the sweep's one-time indexing
//	<prefix>:{Q}:delayed        zset id → not-before ms: moved to ready by Claim when due
//	<prefix>:{Q}:leases         zset id → lease expiry ms: dialing and connected jobs
//	<prefix>:{Q}:done           zset id → finish ms: finished jobs still retained
//	<prefix>:{Q}:dedupe:<E164>  string → the number's open job id
//	<prefix>:{Q}:events         stream: one entry per event of a promise's life (EventType),
//	                            written by the script that makes the change (API, webhooks,
//	                            audits: a finish names the reasons, target and deadline);
//	                            every entry has the same fields in one order, empty where
//	                            the event has no value, so Redis stores their names once
//	                            per stream node
//	<prefix>:{Q}:outcomes       stream: finished promises, as versions before the finish
//	                            moved into events wrote them; trimmed, exported, erased
//	<prefix>:{Q}:fence          counter: fencing tokens
//	<prefix>:{Q}:totals         hash: lifetime counters (made, merged, one per outcome)
//	<prefix>:{Q}:window:<n>     hash: outcome → promises finished in five-minute bucket n
//	                            (unix ms / 300000); expires one bucket after the retention
//	<prefix>:{Q}:requested:<asterisk id>:<linkedid>
//	                            hash: "<reason>/<target>" → the promise that call's request
//	                            made or merged into (OncePerCall); expires after 24 h
//
// Every script that makes a job pending (made, retried, released, reclaimed) also publishes on
// the pub/sub channel <prefix>:{Q}:wake, which Wakeups subscribes to: dispatchers sharing the
// Redis look at once.
//
// Reservations (an agent held by one daemon, so two daemons sharing a Redis never ring the same
// agent) belong to no queue and carry no hash tag:
//
//	<prefix>:agent:<id>:reservation  string: the holder; expires with its lease (Redis' clock)
//
// Nor do the agents' holds (holds.go) and the detector's open calls (calls.go):
//
//	<prefix>:agent:<id>:hold                  hash: wrap_until, cool_until (ms); expires with
//	                                          the later; changes published on <prefix>:holds
//	<prefix>:call:<asterisk id>:<linkedid>    string: the detector's record of an open call;
//	                                          expires 12 h after its last change
//	<prefix>:calls                            zset "<asterisk id> <linkedid>" → when that
//	                                          record is stale (ms): what a start restores
//
// Guarantees: a pending job is in exactly one of ready and delayed, a leased one only in
// leases, a finished one only in done; no two claimers get the same job; an expired lease is
// reclaimed exactly once; a merge keeps the earliest deadline and never shortens a hold
// (not-before); a finished job's hash expires after the retention period, and Reclaim (run
// periodically) drops expired ids from done and old entries from the streams; "now" in
// every decision is the caller's clock. Redis TIME is read only to trim the streams,
// whose entry ids Redis stamps with its own clock; reservation leases, which must run out when
// their holder is gone, also expire on Redis' clock.
package queue
