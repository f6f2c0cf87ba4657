-- ratelimit.lua: count one event against several fixed-window limits, all or none.
-- Standalone: common.lua is not prepended (the counters belong to no queue). Every key
-- carries the hash tag {ratelimit}, so the script runs on Redis Cluster.
-- KEYS[i]  <prefix>:{ratelimit}:<limit>:<subject>:<window index>   counter, one per limit
-- KEYS[n+1] (when ARGV[1] > 0) <prefix>:{ratelimit}:once:<event>   the verdict the event got
-- ARGV[1] how long to remember the event's verdict, ms (0: the event is counted every time)
-- ARGV[2i] the limit's maximum   ARGV[2i+1] the window's length in ms (the counter's TTL)
-- Returns 0 when every counter was below its maximum (each is then incremented), else the
-- index of the first limit reached (nothing is incremented: a refused event costs nothing,
-- so a burst that is refused does not keep the limit closed longer). An event counted before
-- gets its first verdict again and counts nothing.

local remember = tonumber(ARGV[1])
local limits = #KEYS
local once
if remember > 0 then
  once = KEYS[limits]
  limits = limits - 1
  local seen = redis.call('GET', once)
  if seen then
    return tonumber(seen)
  end
end
local verdict = 0
for i = 1, limits do
  local n = tonumber(redis.call('GET', KEYS[i]) or '0')
  if n >= tonumber(ARGV[2 * i]) then
    verdict = i
    break
  end
end
if verdict == 0 then
  for i = 1, limits do
    if redis.call('INCR', KEYS[i]) == 1 then
      redis.call('PEXPIRE', KEYS[i], ARGV[2 * i + 1])
    end
  end
end
if once then
  redis.call('SET', once, verdict, 'PX', remember)
end
return verdict
