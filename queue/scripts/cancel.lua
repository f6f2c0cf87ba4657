-- cancel.lua: close an open job that needs no call any more (cancelled, or resolved because the
-- customer reached us). Not fenced: it is an outside decision that overrides a running dial.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] outcome (cancelled|resolved)   ARGV[6] detail
-- Returns {'ok', job} or {'err', NOTFOUND|STATE, state}.

local jk, id = KEYS[2], ARGV[4]
local st = redis.call('HGET', jk, 'state')
if not st then
  return fail('NOTFOUND')
end
if not OPEN[st] then
  return fail('STATE', st)
end
finish(jk, id, nil, ARGV[5], ARGV[6])
return answer(jk, id)
