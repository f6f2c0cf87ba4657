-- retry.lua: hand a leased job back to pending, to be dialled again after not-before.
-- KEYS[1..10] as in common.lua
-- KEYS[11] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] fencing token   ARGV[6] not-before ms   ARGV[7] detail
-- ARGV[8] '1' when the customer was dialled (uses an attempt), '0' when not (agent no-answer)
-- Returns {'ok', lean job: finish's fields}: state pending, or unreachable when that was the last attempt;
-- or {'err', NOTFOUND|STALE|STATE, state}.

local jk, id, detail = KEYS[11], ARGV[4], ARGV[7]
local bad, j = fenced(jk, ARGV[5], LEASED, FINISH_FIELDS)
if bad then
  return bad
end
if ARGV[8] == '1' then
  local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
  j.attempts = attempts
  local max = tonumber(j.max_attempts)
  if attempts >= max then
    return finish(jk, id, j, 'unreachable', 'attempt ' .. attempts .. ' of ' .. max .. ': ' .. detail)
  end
end
redis.call('HSET', jk, 'not_before', ARGV[6])
release_lease(jk, id, ARGV[6], j.deadline, j.targets)
local ev = 'released'
if ARGV[8] == '1' then
  ev = 'retry'
end
note(jk, id, ev, detail)
emit(jk, id, ev, {'not_before', ARGV[6], 'attempts', j.attempts, 'detail', detail}, j.number)
return lean({'id', id, 'queue', QUEUE, 'number', j.number, 'state', 'pending', 'token', '0',
  'reasons', j.reasons, 'target', j.target, 'created', j.created, 'not_before', ARGV[6],
  'deadline', j.deadline, 'attempts', j.attempts, 'max_attempts', j.max_attempts})
