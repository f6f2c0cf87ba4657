-- reclaim.lua: bring back jobs whose lease expired (their worker crashed or hung).
-- KEYS[1..9] as in common.lua
-- ARGV[1..3] as in common.lua
-- ARGV[4] batch (most jobs handled by one call)
-- Returns {'ok', reclaimed, gave_up}: gave_up of them had used their last attempt and are now
-- unreachable; the rest are pending again. Removing the lease entry and clearing the token
-- happen together, so each expiry is handled exactly once and the old token is refused.
-- The lost call counts as an attempt: the crashed worker may have rung the customer, and a
-- crash loop must not ring anyone more than max attempts.
-- It also runs housekeep (common.lua), so calling Reclaim periodically keeps a quiet queue's
-- indexes and outcome stream within the retention period.

local ids = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[4]))
local gave_up = 0
for _, id in ipairs(ids) do
  local jk = K_JOBP .. id
  local st = redis.call('HGET', jk, 'state')
  if st and LEASED[st] then
    local worker = redis.call('HGET', jk, 'worker')
    local detail = 'lease expired (worker ' .. worker .. ', state ' .. st .. ')'
    local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
    local max = tonumber(redis.call('HGET', jk, 'max_attempts'))
    if attempts >= max then
      -- The lease was taken away, so its holder must hear exactly that (STALE), as when the
      -- job goes back to pending.
      redis.call('HSET', jk, 'token', '0')
      finish(jk, id, 'unreachable', detail)
      gave_up = gave_up + 1
    else
      release_lease(jk, id)
      note(jk, 'lease expired', detail)
    end
  else
    redis.call('ZREM', K_LEASES, id)
  end
end
housekeep()
return {'ok', #ids, gave_up}
