-- ratelimit.lua: count one event against several fixed-window limits, all or none.
-- Standalone: common.lua is not prepended (the counters belong to no queue). Every key
-- carries the hash tag {ratelimit}, so the script runs on Redis Cluster.
-- KEYS[i]  <prefix>:{ratelimit}:<limit>:<subject>:<window index>   counter
-- ARGV[2i-1] the limit's maximum   ARGV[2i] the window's length in ms (the counter's TTL)
-- Returns 0 when every counter was below its maximum (each is then incremented), else the
-- index of the first limit reached (nothing is incremented: a refused event costs nothing,
-- so a burst that is refused does not keep the limit closed longer).

for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[2 * i - 1]) then
    return i
  end
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then
    redis.call('PEXPIRE', key, ARGV[2 * i])
  end
end
return 0
