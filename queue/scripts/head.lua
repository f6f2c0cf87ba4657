-- head.lua: the deadline of the earliest-deadline job Claim could take now. Read-only.
-- KEYS[1] as in common.lua
-- ARGV[1..3] as in common.lua
-- ARGV[4] cap: most due delayed jobs read
-- Returns {'ok', deadline_ms}, or {'ok'} when no job is due.
-- Claim moves delayed jobs whose not-before has come to ready before it picks, so those count
-- as due here too; they are read, not moved, so asking never changes the queue. Owner holds
-- and preferences are the claimer's business and are not applied.

local best = nil
local head = redis.call('ZRANGE', K_READY, 0, 0, 'WITHSCORES')
if #head > 0 then
  best = tonumber(head[2])
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', NOW_S, 'LIMIT', 0, tonumber(ARGV[4]))) do
  -- pcall: a job key of another type (a broken record Claim will set aside) has no deadline.
  local dl = tonumber(redis.pcall('HGET', K_JOBP .. id, 'deadline'))
  if dl and (not best or dl < best) then
    best = dl
  end
end
if not best then
  return {'ok'}
end
return {'ok', best}
