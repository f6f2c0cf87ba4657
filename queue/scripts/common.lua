-- common.lua is prepended to every state-changing script (see scripts.go), so each script is
-- still one atomic EVALSHA while the bookkeeping every transition shares is written once.
--
-- Every script receives the same first ten KEYS, all under the queue's hash tag {Q}:
--   KEYS[1] <prefix>:{Q}:job:      job-key prefix; job keys are KEYS[1]..id. It is declared so
--                                  the cluster routes the script to the slot of every job key.
--   KEYS[2] <prefix>:{Q}:ready     zset id -> deadline ms (due now, EDF order)
--   KEYS[3] <prefix>:{Q}:delayed   zset id -> not-before ms
--   KEYS[4] <prefix>:{Q}:leases    zset id -> lease expiry ms
--   KEYS[5] <prefix>:{Q}:done      zset id -> finish ms (finished jobs still retained)
--   KEYS[6] <prefix>:{Q}:outcomes  stream of finished promises
--   KEYS[7] <prefix>:{Q}:fence     counter for fencing tokens
--   KEYS[8] <prefix>:{Q}:dedupe:   dedupe-key prefix; dedupe keys are KEYS[8]..E164
--   KEYS[9] <prefix>:{Q}:totals    hash of lifetime counters (made, merged, one per outcome)
--   KEYS[10] <prefix>:{Q}:window:  outcome-bucket prefix; bucket keys are KEYS[10]..n, a hash of
--                                  outcome -> count for the promises finished in the n-th
--                                  five-minute bucket since the epoch (see Store.Outcomes)
-- and the same first three ARGV:
--   ARGV[1] now, unix ms, from the caller's clock (never Redis TIME, so fake clocks work)
--   ARGV[2] retention ms: how long a finished job stays readable
--   ARGV[3] queue name
-- Scripts answer {'ok', <HGETALL of the job>} or {'err', code, detail}, code one of
-- NOTFOUND, STALE, STATE, OUTCOME, EMPTY.

local K_JOBP, K_READY, K_DELAYED, K_LEASES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_DONE, K_OUT, K_FENCE, K_DEDUPEP, K_TOTALS = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_WINDOWP = KEYS[10]
-- <prefix>:{Q}:open, zset id -> created ms of every open job (Store.Expire reads it oldest
-- first). Derived from KEYS[1] like the wake channel, so no script's KEYS change; it shares
-- their hash tag, hence their slot.
local K_OPEN = string.sub(K_JOBP, 1, -5) .. 'open'
-- <prefix>:{Q}:events, the stream of everything that happens to a promise (Store.ReadEvents,
-- the API's /events, webhooks). Derived the same way, for the same reason.
local K_EVENTS = string.sub(K_JOBP, 1, -5) .. 'events'
local NOW = tonumber(ARGV[1])
local RETENTION = tonumber(ARGV[2])
local QUEUE = ARGV[3]

-- WINDOW_BUCKET_MS must equal outcomeBucket in ops.go, which reads the buckets back.
local WINDOW_BUCKET_MS = 300000

local OPEN = {pending = true, dialing = true, connected = true}
local LEASED = {dialing = true, connected = true}

-- EVENTS_MAXLEN bounds the event stream between housekeeping runs; retention trims it by age.
local EVENTS_MAXLEN = 100000

-- emit appends one event about job jk (id) to the event stream, in the same script as the
-- change it reports, so a reader never sees a change without its event or the reverse. The
-- number is written so that a consumer need not read a job that may be gone by then; the
-- customer's erasure deletes these entries too (erase.lua). extra is a flat list of
-- field, value pairs; empty values are left out.
local function emit(jk, id, typ, extra)
  local args = {'XADD', K_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    'type', typ, 'promise', id, 'number', redis.call('HGET', jk, 'number') or '', 'at', NOW}
  if extra then
    for i = 1, #extra, 2 do
      local v = extra[i + 1]
      if v ~= nil and v ~= '' then
        args[#args + 1] = extra[i]
        args[#args + 1] = tostring(v)
      end
    end
  end
  redis.call(unpack(args))
end

local function fail(code, detail)
  return {'err', code, detail or ''}
end

local function answer(jk)
  return {'ok', redis.call('HGETALL', jk)}
end

-- json_list decodes a JSON array field; cjson turns an empty array into '{}', so both mean empty.
local function json_list(jk, field)
  local raw = redis.call('HGET', jk, field)
  if not raw or raw == '' or raw == '{}' then
    return {}
  end
  return cjson.decode(raw)
end

-- note appends to the job's history. Releases (agent did not answer) can repeat without end,
-- so the history keeps its first entry and the latest ones, at most 100 in all.
local function note(jk, result, detail)
  local h = json_list(jk, 'history')
  h[#h + 1] = {at = NOW, result = result, detail = detail or ''}
  while #h > 100 do
    table.remove(h, 2)
  end
  redis.call('HSET', jk, 'history', cjson.encode(h))
end

-- place puts a pending job where Claim will find it: delayed until its not-before, then ready
-- ordered by deadline. It tells every dispatcher sharing this Redis (Store.Wakeups) that the
-- queue has work: PUBLISH takes no key, so it is allowed in a script on Redis Cluster too, and
-- the channel <prefix>:{Q}:wake is KEYS[1] with job: replaced.
local function place(jk, id)
  redis.call('PUBLISH', string.sub(K_JOBP, 1, -5) .. 'wake', 'pending')
  local nb, dl = unpack(redis.call('HMGET', jk, 'not_before', 'deadline'))
  redis.call('ZREM', K_READY, id)
  redis.call('ZREM', K_DELAYED, id)
  if tonumber(nb) > NOW then
    redis.call('ZADD', K_DELAYED, nb, id)
  else
    redis.call('ZADD', K_READY, dl, id)
  end
end

-- fenced checks that the caller holds the job's current lease. The token is compared before the
-- state so a worker whose lease was reclaimed learns exactly that, not a confusing state error.
local function fenced(jk, token, allowed)
  if redis.call('EXISTS', jk) == 0 then
    return fail('NOTFOUND')
  end
  local st, tok = unpack(redis.call('HMGET', jk, 'state', 'token'))
  if tok ~= token then
    return fail('STALE', st)
  end
  if not allowed[st] then
    return fail('STATE', st)
  end
  return nil
end

-- housekeep forgets what the retention period has run out for: finished ids in the done index
-- (their hashes expire on their own) and outcome stream entries, which hold numbers too. It runs
-- whenever a promise finishes and on every Reclaim, the daemon's periodic maintenance, so a
-- quiet queue is cleaned as well. Stream ids are Redis' own clock, hence TIME for that cut-off.
local function housekeep()
  redis.call('ZREMRANGEBYSCORE', K_DONE, '-inf', '(' .. (NOW - RETENTION))
  local t = redis.call('TIME')
  local redis_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XTRIM', K_OUT, 'MINID', redis_ms - RETENTION)
  redis.call('XTRIM', K_EVENTS, 'MINID', redis_ms - RETENTION)
end

-- finish closes a promise: out of every open set, into done, onto the outcome stream, dedupe
-- released so the next request for this number opens a new promise, and the hash set to expire.
local function finish(jk, id, outcome, detail)
  redis.call('ZREM', K_READY, id)
  redis.call('ZREM', K_DELAYED, id)
  redis.call('ZREM', K_LEASES, id)
  redis.call('ZREM', K_OPEN, id)
  redis.call('HSET', jk, 'state', outcome, 'outcome', outcome, 'finished', NOW, 'lease_expires', 0)
  note(jk, outcome, detail)
  local number, deadline, attempts, target, reasons_raw = unpack(redis.call('HMGET', jk,
    'number', 'deadline', 'attempts', 'target', 'reasons'))
  local dk = K_DEDUPEP .. number
  if redis.call('GET', dk) == id then
    redis.call('DEL', dk)
  end
  local reasons = json_list(jk, 'reasons')
  redis.call('ZADD', K_DONE, NOW, id)
  housekeep()
  redis.call('XADD', K_OUT, 'MAXLEN', '~', 100000, '*',
    'id', id, 'queue', QUEUE, 'number', number, 'reason', reasons[1] or '',
    'reasons', reasons_raw, 'target', target, 'outcome', outcome, 'deadline', deadline,
    'finished', NOW, 'attempts', attempts, 'detail', detail or '')
  emit(jk, id, outcome, {'attempts', attempts, 'reason', reasons[1] or '', 'detail', detail or ''})
  redis.call('HINCRBY', K_TOTALS, outcome, 1)
  -- Lifetime totals cannot say how the last hour went, and counting the done index by state
  -- would read every retained job; a small hash per five minutes answers any recent window
  -- with a bounded read. It lives one bucket past the retention, the longest window asked for.
  local wk = K_WINDOWP .. string.format('%d', math.floor(NOW / WINDOW_BUCKET_MS))
  redis.call('HINCRBY', wk, outcome, 1)
  redis.call('PEXPIRE', wk, RETENTION + WINDOW_BUCKET_MS)
  redis.call('PEXPIRE', jk, RETENTION)
end

-- release_lease hands a leased job back to pending. Clearing the token is the fence: whoever
-- held the old one is refused from now on, and the next Claim issues a higher one.
local function release_lease(jk, id)
  redis.call('ZREM', K_LEASES, id)
  redis.call('HSET', jk, 'state', 'pending', 'token', '0', 'worker', '', 'lease_expires', 0,
    'connected', 0, 'dialled', 0)
  place(jk, id)
end

-- broken names what makes a job unusable, or returns nil. A ready or leased id whose hash is
-- gone, or a hash without the fields every transition reads, would otherwise make every claim
-- or reclaim of its queue fail for good.
local REQUIRED_NUMBERS = {'created', 'deadline', 'not_before', 'attempts', 'max_attempts'}
local JSON_LISTS = {'reasons', 'targets', 'history'}
local function broken(jk)
  local f = redis.call('HMGET', jk, 'id', 'number', 'created', 'deadline', 'not_before', 'attempts',
    'max_attempts', 'reasons', 'targets', 'history')
  if not f[1] then
    return 'job hash missing'
  end
  if not f[2] or f[2] == '' then
    return 'field number missing'
  end
  for i, name in ipairs(REQUIRED_NUMBERS) do
    if not tonumber(f[i + 2]) then
      return 'field ' .. name .. ' missing or not a number'
    end
  end
  for i, name in ipairs(JSON_LISTS) do
    local raw = f[i + 7]
    if raw and raw ~= '' and not pcall(cjson.decode, raw) then
      return 'field ' .. name .. ' is not JSON'
    end
  end
  return nil
end

-- quarantine takes a broken job out of every index into the queue's dead-letter hash kq
-- (id -> {at, reason}), so the queue goes on; the job hash, if any, is left for an operator
-- to read. quarantined collects {id, reason} pairs for the script's reply.
local function quarantine(kq, quarantined, id, reason)
  redis.call('ZREM', K_READY, id)
  redis.call('ZREM', K_DELAYED, id)
  redis.call('ZREM', K_LEASES, id)
  redis.call('ZREM', K_OPEN, id)
  -- The hash holds the customer's number: it stays for an operator as long as a finished
  -- promise would, not for ever.
  redis.call('PEXPIRE', K_JOBP .. id, RETENTION)
  redis.call('HSET', kq, id, cjson.encode({at = NOW, reason = reason}))
  redis.call('HINCRBY', K_TOTALS, 'quarantined', 1)
  quarantined[#quarantined + 1] = id
  quarantined[#quarantined + 1] = reason
end
