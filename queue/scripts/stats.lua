-- stats.lua: read a queue's counters for Stats in one atomic snapshot, so Leased is always
-- Dialing + Connected. Read-only.
-- KEYS[1] as in common.lua
-- ARGV[1..3] as in common.lua
-- Returns {ready, delayed, dialing, connected, retained, <HGETALL totals>}.
-- Telling dialing from connected needs each leased job's state. Leased jobs are few (at most
-- one per agent on a call), so reading them all stays cheap; no other job is touched.

local dialing, connected = 0, 0
for _, id in ipairs(redis.call('ZRANGE', K_LEASES, 0, -1)) do
  -- pcall: a job key of another type (a broken record Reclaim will set aside) counts as neither.
  local st = redis.pcall('HGET', K_JOBP .. id, 'state')
  if st == 'dialing' then
    dialing = dialing + 1
  elseif st == 'connected' then
    connected = connected + 1
  end
end
-- The done index is trimmed when jobs finish; in a quiet queue it can still name hashes that
-- have expired, so count only the ones inside the retention period.
local retained = redis.call('ZCOUNT', K_DONE, now_ms() - tonumber(RETENTION_S), '+inf')
return {redis.call('ZCARD', K_READY), redis.call('ZCARD', K_DELAYED), dialing, connected,
  retained, redis.call('HGETALL', K_TOTALS)}
