-- resolve.lua: the customer reached the business; close their open promise, found by number.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:dedupe:<E164>
-- ARGV[1..3] as in common.lua
-- ARGV[4] detail
-- Returns {'ok', job} or {'err', 'NOTFOUND'} when the number has no open promise.

local id = redis.call('GET', KEYS[2])
if not id then
  return fail('NOTFOUND')
end
local jk = K_JOBP .. id
local st = redis.call('HGET', jk, 'state')
if not st or not OPEN[st] then
  return fail('NOTFOUND')
end
finish(jk, id, nil, 'resolved', ARGV[4])
return answer(jk, id)
