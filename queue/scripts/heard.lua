-- heard.lua: record that another daemon's janitor heard the customer of this claim answer
-- (and press the confirm digit, where the queue has one) while the claim's own daemon had not
-- written the connect yet. Nothing else changes: the claim's daemon, if alive, goes on and
-- writes the connect itself. If it dies first, the lease expiry finishes the promise kept or
-- late by the heard time (reclaim.lua) instead of charging an attempt and ringing the customer
-- again: the answer is in Redis, not only in the memory of a janitor that may die too.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] fencing token of the claim heard   ARGV[6] when the answer was heard, ms
-- Returns {'ok', lean job: id, queue, state, token} or {'err', NOTFOUND|STALE|STATE, state}.

local jk = KEYS[2]
local bad, j = fenced(jk, ARGV[5], {dialing = true})
if bad then
  return bad
end
redis.call('HSET', jk, 'heard_token', ARGV[5], 'heard_at', ARGV[6])
return lean({'id', ARGV[4], 'queue', QUEUE, 'state', j.state, 'token', j.token})
