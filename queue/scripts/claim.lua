-- claim.lua: lease the due job with the earliest deadline (or the claimer's own, see below).
-- KEYS[1..9] as in common.lua
-- ARGV[1..3] as in common.lua
-- ARGV[4] worker   ARGV[5] lease ms   ARGV[6] prefer (target/owner; '' for none)
-- ARGV[7] prefer share (0..1; 0 = prefer until the deadline)   ARGV[8] promote batch
-- ARGV[9] preference window (how many of the earliest due jobs may be passed over)
-- Returns {'ok', job} (state dialing, a new fencing token) or {'err', 'EMPTY'}.

local worker, lease_ms, prefer = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local share, batch, window = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])

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

local pick = cands[1]
if prefer ~= '' then
  for _, id in ipairs(cands) do
    local jk = K_JOBP .. id
    local raw, created, dl = unpack(redis.call('HMGET', jk, 'targets', 'created', 'deadline'))
    created, dl = tonumber(created), tonumber(dl)
    local until_ms = dl
    if share > 0 then
      until_ms = created + share * (dl - created)
    end
    if NOW < until_ms and raw and raw ~= '{}' then
      local mine = false
      for _, t in ipairs(cjson.decode(raw)) do
        if t == prefer then
          mine = true
        end
      end
      if mine then
        pick = id
        break
      end
    end
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
