-- retry.lua: hand a leased job back to pending, to be dialled again after not-before.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] fencing token   ARGV[6] not-before ms   ARGV[7] detail
-- ARGV[8] '1' when the customer was dialled (uses an attempt), '0' when not (agent no-answer)
-- Returns {'ok', lean job} with state pending, or finish's {'finished', values} when that was the
-- last attempt; or {'err', NOTFOUND|STALE|STATE, state}.

local jk, id, detail = KEYS[2], ARGV[4], ARGV[7]
-- 3 number, 4 deadline, 5 attempts, 6 max_attempts, 7 target, 8 reasons, 10 created, 13
-- targets: FINISH_FIELDS' order, which finish reads the values in.
local v = redis.call('HMGET', jk, unpack(FINISH_FIELDS))
local bad = fence_check(jk, v[1], v[2], ARGV[5], LEASED)
if bad then
  return bad
end
if ARGV[8] == '1' then
  local attempts = redis.call('HINCRBY', jk, 'attempts', 1)
  v[5] = string.format('%d', attempts)
  local max = tonumber(v[6])
  if attempts >= max then
    return finish(jk, id, v, 'unreachable', 'attempt ' .. attempts .. ' of ' .. max .. ': ' .. detail)
  end
end
redis.call('HSET', jk, 'not_before', ARGV[6])
release_lease(jk, id, ARGV[6], v[4], v[13])
local ev = 'released'
if ARGV[8] == '1' then
  ev = 'retry'
end
note(jk, id, ev, detail)
emit(jk, id, ev, {'not_before', ARGV[6], 'attempts', v[5], 'detail', detail}, v[3])
return lean({'id', id, 'queue', QUEUE, 'number', v[3], 'state', 'pending', 'token', '0',
  'reasons', v[8], 'target', v[7], 'created', v[10], 'not_before', ARGV[6],
  'deadline', v[4], 'attempts', v[5], 'max_attempts', v[6]})
