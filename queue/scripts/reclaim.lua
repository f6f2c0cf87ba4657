-- reclaim.lua: bring back jobs whose lease expired (their worker crashed or hung).
-- KEYS[1] as in common.lua   KEYS[2] <prefix>:{Q}:quarantine (dead letters: id -> reason)
-- ARGV[1..3] as in common.lua
-- ARGV[4] batch (most jobs handled by one call)   ARGV[5..] ids the caller runs a callback for
-- itself (left alone: their holder is alive, only Redis was not, and will renew them)
-- Returns {'ok', reclaimed, gave_up, kept, late, quarantined, released}: quarantined lists {id, reason, ...}
-- of the broken jobs moved aside (they count among reclaimed); of the other reclaimed jobs, gave_up were dialing on
-- their last attempt and are now unreachable, kept and late were connected and are now
-- finished so; the rest are pending again. Removing the lease entry and clearing the token happen
-- together, so each expiry is handled exactly once and the old token is refused.
-- A dialing job's lost call counts as an attempt once its claim recorded that it was about to
-- ring the customer (dialled.lua, before the customer leg exists): the crashed worker may have
-- rung them, and a crash loop must not ring anyone more than max attempts. Before that only the
-- agent was rung, so the job is pending again without an attempt used (released counts those).
-- A claim that never wrote the field (a daemon older than dialled.lua) counts as dialled: when
-- in doubt, an attempt is charged rather than a customer rung once too often.
-- A connected job is different: the customer was reached, so the promise was honoured (or
-- broken late) whatever happened to the worker afterwards. Sending it back to pending would
-- ring the customer a second time for a call they already had. Like Complete, this uses no
-- attempt, and kept or late is judged from the recorded connect time, not the reclaim time.
-- So is a dialing job whose customer another daemon heard answer under this claim (heard.lua):
-- the claim died before it wrote the connect, and the heard time stands for it.
-- It also runs housekeep (common.lua), so calling Reclaim periodically keeps a quiet queue's
-- indexes and outcome stream within the retention period.

local K_QUAR = KEYS[2]
local quarantined = {}
local held = {}
for i = 5, #ARGV do
  held[ARGV[i]] = true
end
local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', NOW_S, 'LIMIT', 0, tonumber(ARGV[4]) + #ARGV - 4)
local ids = {}
for _, id in ipairs(expired) do
  if not held[id] and #ids < tonumber(ARGV[4]) then
    ids[#ids + 1] = id
  end
end
local gave_up, kept, late, released = 0, 0, 0, 0
-- finish_talked finishes a job whose customer talked, kept or late by the connect time conn.
local function finish_talked(jk, id, conn, detail)
  local outcome = 'kept'
  if tonumber(conn) > tonumber(redis.call('HGET', jk, 'deadline')) then
    outcome = 'late'
    late = late + 1
  else
    kept = kept + 1
  end
  -- The lease was taken away, so its holder must hear exactly that (STALE).
  redis.call('HSET', jk, 'token', '0')
  finish(jk, id, nil, outcome, detail)
end
-- heard_now: another daemon heard the customer of the expiring claim answer (heard.lua).
local function heard_now(jk)
  local tok, heard, at = unpack(redis.call('HMGET', jk, 'token', 'heard_token', 'heard_at'))
  return heard ~= false and heard == tok and (tonumber(at) or 0) > 0
end
for _, id in ipairs(ids) do
  local jk = K_JOBP .. id
  -- pcall: a job key of another type answers an error, which broken names.
  local st = redis.pcall('HGET', jk, 'state')
  local why = broken(jk)
  -- A lease entry left behind by a finished (or pending) job is only forgotten; a job whose
  -- state is missing or unknown is broken. FINAL: the finished states (luaConstants).
  if not why and not OPEN[st] and not FINAL[st] then
    why = 'field state missing or not a known state'
  end
  if not why and st == 'connected' and not ((tonumber(redis.call('HGET', jk, 'connected')) or 0) > 0) then
    why = 'connected without a connect time'
  end
  if why then
    quarantine(K_QUAR, quarantined, id, why)
  elseif st == 'connected' then
    local worker, conn = unpack(redis.call('HMGET', jk, 'worker', 'connected'))
    finish_talked(jk, id, conn, 'lease expired after connect (worker ' .. (worker or '?') .. ')')
  elseif st == 'dialing' and heard_now(jk) then
    local worker, at = unpack(redis.call('HMGET', jk, 'worker', 'heard_at'))
    redis.call('HSET', jk, 'connected', at)
    finish_talked(jk, id, at, 'lease expired after the customer answered, heard by another daemon (worker ' ..
      (worker or '?') .. ')')
  elseif st == 'dialing' and redis.call('HGET', jk, 'dialled') == '0' then
    local worker, tok = unpack(redis.call('HMGET', jk, 'worker', 'token'))
    release_lease(jk, id)
    -- Kept until the next claim: a janitor that finds this claim's legs talking may still
    -- record the conversation (adopted.lua).
    redis.call('HSET', jk, 'reclaimed_token', tok, 'reclaimed_charged', 0)
    local detail = 'lease expired (worker ' .. (worker or '?') .. ', customer not dialled: no attempt used)'
    note(jk, id, 'lease expired', detail)
    emit(jk, id, 'released', {'attempts', redis.call('HGET', jk, 'attempts'), 'detail', detail})
    released = released + 1
  elseif st == 'dialing' then
    local worker = redis.call('HGET', jk, 'worker')
    local detail = 'lease expired (worker ' .. (worker or '?') .. ', state ' .. st .. ')'
    local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
    local max = tonumber(redis.call('HGET', jk, 'max_attempts'))
    if attempts >= max then
      -- As above: the holder must be told its lease is gone, not that the job finished.
      redis.call('HSET', jk, 'token', '0')
      finish(jk, id, nil, 'unreachable', detail)
      gave_up = gave_up + 1
    else
      local tok = redis.call('HGET', jk, 'token')
      release_lease(jk, id)
      redis.call('HSET', jk, 'reclaimed_token', tok, 'reclaimed_charged', 1)
      note(jk, id, 'lease expired', detail)
      emit(jk, id, 'retry', {'attempts', attempts, 'detail', detail})
    end
  else
    redis.call('ZREM', K_LEASES, id)
  end
end
-- The per-target index of ready jobs (for:<target>, common.lua) is younger than some ready
-- jobs may be: the sweep indexes the ready set once, a batch a call, its progress in
-- <prefix>:{Q}:for-indexed (the rank reached, 'all' when done). Each batch starts a little
-- before where the last one ended, so jobs claimed in between shifting the ranks leave no gap
-- (indexing one twice changes nothing).
local K_FOR_INDEXED = K_BASE .. 'for-indexed'
local reached = redis.call('GET', K_FOR_INDEXED)
if reached ~= 'all' then
  local from = math.max(0, (tonumber(reached) or 0) - 200)
  local batch = redis.call('ZRANGE', K_READY, from, from + 999, 'WITHSCORES')
  for i = 1, #batch, 2 do
    for _, t in ipairs(targets_of(redis.call('HGET', K_JOBP .. batch[i], 'targets'))) do
      redis.call('ZADD', K_FORP .. t, batch[i + 1], batch[i])
    end
  end
  if #batch < 2000 then
    redis.call('SET', K_FOR_INDEXED, 'all')
  else
    redis.call('SET', K_FOR_INDEXED, from + 1000)
  end
end
housekeep()
return {'ok', #ids, gave_up, kept, late, quarantined, released}
