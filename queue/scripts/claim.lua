-- claim.lua: lease the due job with the earliest deadline (or the claimer's own, see below).
-- KEYS[1..10] as in common.lua
-- ARGV[1..3] as in common.lua
-- ARGV[4] worker   ARGV[5] lease ms   ARGV[6] prefer (target/owner; '' for none)
-- ARGV[7] prefer share (0..1; 0 = prefer until the deadline)   ARGV[8] promote batch
-- ARGV[9] preference window (how many of the earliest due jobs are looked at)
-- ARGV[10..] held: owners other than the claimer whose jobs are left to them while the job's
--            preference window runs (none when absent)
-- Returns {'ok', job} (state dialing, a new fencing token), {'err', 'EMPTY', ''} when nothing is
-- due, or {'err', 'EMPTY', held_until_ms} when due jobs were all left to their held owners:
-- held_until_ms is when the earliest of those holds ends.

local worker, lease_ms, prefer = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local share, batch, window = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local held = {}
local holding = false
for i = 10, #ARGV do
  held[ARGV[i]] = true
  holding = true
end

-- Delayed jobs become due here rather than by a forwarder. All of them, in batches: leaving
-- any due job behind could hide the earliest deadline from this claim. Each job is promoted
-- once, so the work is paid once per job however many claims follow.
while true do
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', NOW, 'LIMIT', 0, batch)
  for _, id in ipairs(due) do
    redis.call('ZREM', K_DELAYED, id)
    local dl = redis.call('HGET', K_JOBP .. id, 'deadline')
    if dl then
      redis.call('ZADD', K_READY, dl, id)
    end
  end
  if #due < batch then
    break
  end
end

local cands = redis.call('ZRANGE', K_READY, 0, window - 1)
if #cands == 0 then
  return fail('EMPTY')
end

-- The preference window of a job: while it runs the job waits for its own people (the claimer
-- whose Prefer it names, or its owner when held) before anyone else takes it.
-- A job made in business time carries its own hold_until (the owner's share of its open
-- hours, computed by the engine's calendar); others take share of the wall time.
local function window_end(created, dl, hold)
  if hold and hold > 0 then
    return hold
  end
  if share > 0 then
    return created + share * (dl - created)
  end
  return dl
end

local pick = nil
if prefer == '' and not holding then
  pick = cands[1]
else
  local held_until = nil
  for _, id in ipairs(cands) do
    local raw, owner, created, dl, hold = unpack(redis.call('HMGET', K_JOBP .. id, 'targets', 'owner',
      'created', 'deadline', 'hold_until'))
    local running = NOW < window_end(tonumber(created), tonumber(dl), tonumber(hold))
    local mine = false
    if running and prefer ~= '' and raw and raw ~= '{}' then
      for _, t in ipairs(cjson.decode(raw)) do
        if t == prefer then
          mine = true
        end
      end
    end
    if mine then
      pick = id
      break
    end
    -- A job named for the claimer (above) is never left to someone else, even when its first
    -- target is held: it is this claimer's own job too.
    local skip = running and owner and owner ~= '' and held[owner]
    if skip then
      local ends = math.ceil(window_end(tonumber(created), tonumber(dl), tonumber(hold)))
      if not held_until or ends < held_until then
        held_until = ends
      end
    elseif not pick then
      pick = id
      if prefer == '' then
        break
      end
    end
  end
  if not pick then
    return fail('EMPTY', string.format('%d', held_until))
  end
end

local jk = K_JOBP .. pick
local token = redis.call('INCR', K_FENCE)
local expires = NOW + lease_ms
redis.call('ZREM', K_READY, pick)
redis.call('ZADD', K_LEASES, expires, pick)
redis.call('HSET', jk, 'state', 'dialing', 'token', token, 'worker', worker,
  'lease_expires', expires, 'connected', 0)
note(jk, 'claimed', 'worker=' .. worker)
return answer(jk)
