-- agent_hold.lua: hold an agent back (wrap-up after a call, cooldown after a ring nobody
-- answered) for every daemon sharing this Redis, and tell them.
-- Standalone: common.lua is not prepended (the key is an agent's, not a queue's).
-- KEYS[1] <prefix>:agent:<id>:hold   hash: wrap_until, cool_until (ms, the callers' clock)
-- ARGV[1] agent id   ARGV[2] wrap-up until ms   ARGV[3] cooldown until ms (0: none)
-- ARGV[4] now ms     ARGV[5] channel <prefix>:holds (published: the agent id)
-- Returns when the longer hold ends (ms; 0 when none is ahead). A hold is never shortened:
-- two daemons ending calls of one agent keep the later end of each.

local now = tonumber(ARGV[4])
local function later(field, v)
  local old = tonumber(redis.call('HGET', KEYS[1], field) or '0') or 0
  if v > old then
    redis.call('HSET', KEYS[1], field, v)
    return v
  end
  return old
end
local last = math.max(later('wrap_until', tonumber(ARGV[2])), later('cool_until', tonumber(ARGV[3])))
if last <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
-- Relative: the caller's clock may be simulated, Redis' own clock is not.
redis.call('PEXPIRE', KEYS[1], last - now)
redis.call('PUBLISH', ARGV[5], ARGV[1])
return last
