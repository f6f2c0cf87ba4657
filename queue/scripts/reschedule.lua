-- reschedule.lua: give a pending promise a new window (not-before, deadline), e.g. the customer
-- asked to be called tomorrow instead. Not fenced: only a pending job is moved; one being
-- dialled is its worker's until the call ends.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] not-before ms   ARGV[6] deadline ms
-- ARGV[7] hold-until ms (end of the owner's preference window; 0: the claim's share)
-- ARGV[8] at risk from start ('1' when the forecast says the new deadline will be missed)
-- ARGV[9] detail
-- Returns {'ok', job} or {'err', NOTFOUND|STATE, state}.

local jk, id = KEYS[2], ARGV[4]
local st = redis.call('HGET', jk, 'state')
if not st then
  return fail('NOTFOUND')
end
if st ~= 'pending' then
  return fail('STATE', st)
end
redis.call('HSET', jk, 'not_before', ARGV[5], 'deadline', ARGV[6], 'hold_until', tonumber(ARGV[7]) or 0,
  'at_risk_from_start', ARGV[8])
place(jk, id, ARGV[5], ARGV[6], redis.call('HGET', jk, 'targets'), true)
note(jk, id, 'rescheduled', ARGV[9])
emit(jk, id, 'rescheduled', {'not_before', ARGV[5], 'deadline', ARGV[6], 'detail', ARGV[9]})
return answer(jk, id)
