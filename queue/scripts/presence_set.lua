-- presence_set.lua: set an agent's presence and tell every daemon sharing this Redis.
-- Standalone: common.lua is not prepended (the key is an agent's, not a queue's).
-- KEYS[1] <prefix>:agent:<id>:presence   hash: state, since (ms), by
-- ARGV[1] agent id   ARGV[2] state   ARGV[3] now ms   ARGV[4] by (who set it)
-- ARGV[5] channel <prefix>:presence (published: the agent id)
-- Returns the previous state ('' when none was set). Setting the state it already has keeps
-- its since, so "logged in since 08:29" survives a second login.

local prev = redis.call('HGET', KEYS[1], 'state') or ''
if prev ~= ARGV[2] then
  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'since', ARGV[3], 'by', ARGV[4])
end
redis.call('PUBLISH', ARGV[5], ARGV[1])
return prev
