-- emit.lua: append an event the dialer knows about and no other script does (agent rung, at
-- risk) to the queue's event stream. A script, not a bare XADD, so the entry has the same
-- fields and trimming as those the transitions write, and names the number of the job as it
-- is now.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] event type   ARGV[6..] field, value pairs
-- Returns {'ok', 1} when written, {'ok', 0} for an at-risk event the promise already had, or
-- {'err', NOTFOUND}. A promise is announced at risk once (the job's at_risk_told field), however
-- many daemons watch the forecast and however often they look.

local jk = KEYS[2]
if redis.call('EXISTS', jk) == 0 then
  return fail('NOTFOUND')
end
if ARGV[5] == 'at_risk' then
  if redis.call('HGET', jk, 'at_risk_told') == '1' then
    return {'ok', 0}
  end
  redis.call('HSET', jk, 'at_risk_told', '1')
end
local extra = {}
for i = 6, #ARGV do
  extra[#extra + 1] = ARGV[i]
end
emit(jk, ARGV[4], ARGV[5], extra)
return {'ok', 1}
