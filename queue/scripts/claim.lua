-- claim.lua: lease the due job with the earliest deadline (or the claimer's own, see below).
-- KEYS[1] as in common.lua   KEYS[2] <prefix>:{Q}:quarantine (dead letters: id -> reason)
-- ARGV[1..3] as in common.lua
-- ARGV[4] worker   ARGV[5] lease expiry ms (now + the lease)   ARGV[6] prefer (target/owner; '' for none)
-- ARGV[7] prefer share (0..1; 0 = prefer until the deadline)
-- ARGV[8..] held: owners other than the claimer whose jobs are left to them while the job's
--            preference window runs (none when absent)
-- Returns {'ok', values}: the values of the job's fields named in the HMGET below, in that
-- order (claimFields in transitions.go; false for a field the job does not have), the token
-- among them the new fencing token, then first_claim ('1' when the job had never been
-- claimed, '0' otherwise; not stored), the worker and the lease expiry. The state (dialing),
-- connected and dialled (0) are what every claim writes, so they are not sent. Values without
-- their names, and only these fields: a claim's reply was a third of its time in Redis.
-- {'err', 'EMPTY', ''} when nothing is
-- due, or {'err', 'EMPTY', held_until_ms} when due jobs were all left to their held owners:
-- held_until_ms is when the earliest of those holds ends. Either reply carries, as its last
-- element, the {id, reason, ...} pairs of the broken jobs this claim quarantined on its way.

local K_QUAR = KEYS[2]
local quarantined = {}
local worker, prefer = ARGV[4], ARGV[6]
-- The numbers stay strings until a path computes with them (see NOW_S).
local share = nil
local held = {}
local holding = false
for i = 8, #ARGV do
  held[ARGV[i]] = true
  holding = true
end

-- Delayed jobs become due here rather than by a forwarder. All of them, in batches: leaving
-- any due job behind could hide the earliest deadline from this claim. Each job is promoted
-- once, so the work is paid once per job however many claims follow.
while true do
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', NOW_S, 'LIMIT', '0', PROMOTE_BATCH_S)
  if #due == 0 then
    break
  end
  for _, id in ipairs(due) do
    redis.call('ZREM', K_DELAYED, id)
    -- pcall: a job key of another type answers an error, and is quarantined as broken.
    local r = redis.pcall('HMGET', K_JOBP .. id, 'deadline', 'targets')
    local dl, targets = unpack(r)
    if tonumber(dl) then
      ready_add(id, dl, targets)
    elseif r.err then
      quarantine(K_QUAR, quarantined, id, NOT_A_HASH)
    else
      quarantine(K_QUAR, quarantined, id, 'field deadline missing or not a number')
    end
  end
  if #due < PROMOTE_BATCH then
    break
  end
end

-- A plain claim (no preference, nobody held) needs none of what follows, so it does not make
-- these functions either.
local plain = prefer == '' and not holding
local choose = nil
if not plain then
  -- The preference window of a job: while it runs the job waits for its own people (the claimer
  -- whose Prefer it names, or its owner when held) before anyone else takes it.
  -- A job made in business time carries its own hold_until (the owner's share of its open
  -- hours, computed by the engine's calendar); others take share of the wall time.
  local function window_end(created, dl, hold)
    if hold and hold > 0 then
      return hold
    end
    share = share or tonumber(ARGV[7])
    if share > 0 then
      return created + share * (dl - created)
    end
    return dl
  end

  -- look reads what choose needs of candidate id: its owner and whether its preference window
  -- runs and when it ends; nil when its times cannot be read (it is quarantined on the way).
  local function look(id)
    local r = redis.pcall('HMGET', K_JOBP .. id, 'owner', 'created', 'deadline', 'hold_until')
    if r.err then
      quarantine(K_QUAR, quarantined, id, NOT_A_HASH)
      return nil
    end
    local owner, created, dl, hold = unpack(r)
    created, dl, hold = tonumber(created), tonumber(dl), tonumber(hold)
    if not created or not dl then
      quarantine(K_QUAR, quarantined, id, 'field created or deadline missing or not a number')
      return nil
    end
    local ends = window_end(created, dl, hold)
    return {owner = owner, running = now_ms() < ends, ends = ends}
  end

  -- choose returns the job to lease from the earliest due ones, cands in deadline order, or nil
  -- and when the earliest hold ends. The claimer's own jobs (Prefer among their targets) come
  -- from the ready jobs' per-target index, so no job is read to find them, only those of them
  -- among cands (whose windows may have ended); the others are read in order only while they
  -- are held for their owners.
  choose = function(cands)
    if prefer ~= '' then
      local in_window = {}
      for _, id in ipairs(cands) do
        in_window[id] = true
      end
      local last = redis.call('ZSCORE', K_READY, cands[#cands])
      for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_FORP .. prefer, '-inf', last)) do
        if in_window[id] then
          local c = look(id)
          if c and c.running then
            return id
          end
        end
      end
    end
    -- A job named for the claimer (above) is never left to someone else, even when its first
    -- target is held: it is this claimer's own job too.
    local held_until = nil
    for _, id in ipairs(cands) do
      if not holding then
        return id
      end
      local c = look(id)
      if c then
        if not (c.running and c.owner and c.owner ~= '' and held[c.owner]) then
          return id
        end
        local ends = math.ceil(c.ends)
        if not held_until or ends < held_until then
          held_until = ends
        end
      end
    end
    return nil, held_until
  end
end

-- A plain claim (no preference, nobody held) takes the earliest deadline: ZPOPMIN reads and
-- removes it from ready in one command. Otherwise the window of the earliest is looked at and
-- the one chosen is removed from ready below.
local pick, v
while true do
  local cands
  if plain then
    cands = redis.call('ZPOPMIN', K_READY)
    cands[2] = nil
  else
    cands = redis.call('ZRANGE', K_READY, '0', PREFER_LAST_S)
  end
  if #cands == 0 then
    local r = fail('EMPTY')
    r[4] = quarantined
    return r
  end
  local held_until
  if plain then
    pick = cands[1]
  else
    pick, held_until = choose(cands)
  end
  if not pick then
    if not held_until then
      -- Every candidate was quarantined: look at the next ones.
    else
      local r = fail('EMPTY', string.format('%d', held_until))
      r[4] = quarantined
      return r
    end
  else
    -- One read of the job serves the check, the event and the reply. The first twelve are
    -- what this script reads itself. pcall: a job key of another type answers an error, which
    -- broken_values names, so it is quarantined rather than lost off the ready set it was
    -- popped from.
    v = redis.pcall('HMGET', K_JOBP .. pick, 'id', 'number', 'created', 'deadline', 'not_before', 'attempts',
      'max_attempts', 'reasons', 'targets', 'history', 'token', 'hn', 'name', 'target', 'owner', 'note',
      'at_risk_from_start', 'external_ref', 'src_asterisk', 'src_linkedid', 'src_channel', 'hold_until')
    local why = broken_values(v)
    if not why then
      break
    end
    quarantine(K_QUAR, quarantined, pick, why)
  end
end

local jk = K_JOBP .. pick
local token = redis.call('INCR', K_FENCE)
if plain then
  for _, t in ipairs(targets_of(v[9])) do
    redis.call('ZREM', K_FORP .. t, pick)
  end
else
  ready_remove(pick, v[9])
end
local expires_s = ARGV[5]
redis.call('ZADD', K_LEASES, expires_s, pick)
-- reclaimed_token stays: the claim Reclaim took back may still be a conversation whose connect
-- is on its way (adopted.lua), and wins over this claim until it rings the customer.
-- The lease is written with its values spelled out, not from a table walked with pairs: on the
-- hottest script every Lua table and loop is paid on each claim.
local token_s = string.format('%d', token)
local detail = 'worker=' .. worker
-- Every claim leaves a token field behind (release, retry and reclaim set it to 0), so a job
-- without one was never claimed (first_claim): no call of an earlier claim can be on the PBX.
local first = v[11] and '0' or '1'
if v[12] then
  local hist = history_fields(jk, v[12], 'claimed', detail)
  if first == '1' then
    -- Nothing has connected on a job never claimed, so there is no connect time to clear, and
    -- a finished job that never connected is a field smaller (an absent connected reads as 0).
    -- dialled is written all the same: reclaim.lua and adopted.lua take a claim without it for
    -- one made before the dialled stage existed, which may have rung the customer.
    redis.call('HSET', jk, 'state', 'dialing', 'token', token_s, 'worker', worker, 'lease_expires', expires_s,
      'dialled', '0', hist[1], hist[2], hist[3], hist[4])
  else
    redis.call('HSET', jk, 'state', 'dialing', 'token', token_s, 'worker', worker, 'lease_expires', expires_s,
      'connected', '0', 'dialled', '0', hist[1], hist[2], hist[3], hist[4])
  end
else
  redis.call('HSET', jk, 'state', 'dialing', 'token', token_s, 'worker', worker, 'lease_expires', expires_s,
    'connected', '0', 'dialled', '0')
  note(jk, pick, 'claimed', detail, false)
end
v[11] = token_s
v[23], v[24], v[25] = first, worker, expires_s
event(jk, pick, 'claimed', v[2], worker, v[6])
return {'ok', v, quarantined}
