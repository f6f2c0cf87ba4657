-- connected.lua: record that the customer answered (dialing -> connected).
-- KEYS[1..10] as in common.lua
-- KEYS[11] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] fencing token   ARGV[6] connect time ms   ARGV[7] detail
-- Returns {'ok', job} or {'err', NOTFOUND|STALE|STATE, state}.

local jk = KEYS[11]
local bad = fenced(jk, ARGV[5], {dialing = true})
if bad then
  return bad
end
redis.call('HSET', jk, 'state', 'connected', 'connected', ARGV[6])
note(jk, 'connected', ARGV[7])
emit(jk, ARGV[4], 'connected', {'agent', redis.call('HGET', jk, 'worker'), 'detail', ARGV[7]})
return answer(jk)
