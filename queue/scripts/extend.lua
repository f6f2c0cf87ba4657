-- extend.lua: push a held lease's expiry to now + lease.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] fencing token   ARGV[6] lease ms
-- Returns {'ok', lean job: id, queue, state, token, lease_expires} or {'err', NOTFOUND|STALE|STATE, state}.

local jk, id = KEYS[2], ARGV[4]
local bad, j = fenced(jk, ARGV[5], LEASED)
if bad then
  return bad
end
local expires = now_ms() + tonumber(ARGV[6])
redis.call('ZADD', K_LEASES, expires, id)
redis.call('HSET', jk, 'lease_expires', expires)
return lean({'id', id, 'queue', QUEUE, 'state', j.state, 'token', j.token, 'lease_expires', expires})
