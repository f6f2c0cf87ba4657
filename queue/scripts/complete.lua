-- complete.lua: finish a leased job with the worker's outcome.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] fencing token   ARGV[6] outcome   ARGV[7] detail
-- Returns finish's {'finished', values} or {'err', NOTFOUND|STALE|STATE|OUTCOME, detail}.
-- kept and late need a connected job, and the script, not the caller, is the judge of which
-- one it was: kept only when the recorded connect time is not after the deadline.

local jk, id, outcome, detail = KEYS[2], ARGV[4], ARGV[6], ARGV[7]
local allowed = LEASED
if outcome == 'kept' or outcome == 'late' then
  allowed = {connected = true}
end
-- 1 state, 2 token, 4 deadline, 11 connected: FINISH_FIELDS' order.
local v = redis.call('HMGET', jk, unpack(FINISH_FIELDS))
local bad = fence_check(jk, v[1], v[2], ARGV[5], allowed)
if bad then
  return bad
end
if outcome == 'kept' or outcome == 'late' then
  local late = tonumber(v[11]) > tonumber(v[4])
  if outcome == 'kept' and late then
    return fail('OUTCOME', 'connected after the deadline, so the promise was late, not kept')
  end
  if outcome == 'late' and not late then
    return fail('OUTCOME', 'connected before the deadline, so the promise was kept, not late')
  end
end
return finish(jk, id, v, outcome, detail)
