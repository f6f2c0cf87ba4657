-- dialled.lua: record, before the customer leg exists, that this claim is about to ring the
-- customer, so a lease that expires from now on costs the customer an attempt (reclaim.lua).
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] fencing token
-- Returns {'ok', lean job: id, queue, number, state, token, worker, attempts, dialled} or {'err', NOTFOUND|STALE|STATE, state}.
-- Until this runs the claim has at most rung an agent; a crash then must give the promise back
-- without an attempt, and a crash after it must not, or a crash loop could ring a customer
-- more than max_attempts times.

local jk = KEYS[2]
local bad, j = fenced(jk, ARGV[5], {dialing = true}, {'worker', 'attempts', 'number'})
if bad then
  return bad
end
redis.call('HSET', jk, 'dialled', NOW_S)
emit(jk, ARGV[4], 'customer_dialled', {'agent', j.worker, 'attempts', tonumber(j.attempts) + 1}, j.number)
return lean({'id', ARGV[4], 'queue', QUEUE, 'number', j.number, 'state', j.state, 'token', j.token,
  'worker', j.worker, 'attempts', j.attempts, 'dialled', NOW_S})
