-- asked_remember.lua: remember that a number is owed a callback by promise Q/id, until a time.
-- Standalone: common.lua is not prepended (the memory is the number's, not a queue's). The key
-- carries the number's own hash tag, so the script runs on Redis Cluster and numbers spread
-- over the slots.
-- KEYS[1] <prefix>:{asked:<E164>}   hash: "<queue>/<promise id>" -> remembered until (ms)
-- ARGV[1] "<queue>/<promise id>"    ARGV[2] until (ms)    ARGV[3] now (ms)
-- Returns the key's new expiry (ms, the caller's clock). Entries already past their time are dropped, and the key
-- lives as long as its longest entry, so a number nobody owes anything to leaves nothing.

local until_ms = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if old > until_ms then
  until_ms = old
end
redis.call('HSET', KEYS[1], ARGV[1], until_ms)
local latest = until_ms
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local t = tonumber(all[i + 1]) or 0
  if t <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif t > latest then
    latest = t
  end
end
-- Relative: the caller's clock may be simulated, Redis' own clock is not.
redis.call('PEXPIRE', KEYS[1], latest - now)
return latest
