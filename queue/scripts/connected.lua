-- connected.lua: record that the customer answered (dialing -> connected).
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] fencing token   ARGV[6] connect time ms   ARGV[7] detail
-- Returns {'ok', lean job: id, queue, number, state, token, worker, connected} or {'err', NOTFOUND|STALE|STATE, state}.

local jk = KEYS[2]
local bad, j = fenced(jk, ARGV[5], {dialing = true}, {'worker', 'number', 'hn'})
if bad then
  return bad
end
local set = {'HSET', jk, 'state', 'connected', 'connected', ARGV[6]}
if j.hn then
  redis.call(unpack(append(set, history_fields(jk, j.hn, 'connected', ARGV[7]))))
else
  redis.call(unpack(set))
  note(jk, ARGV[4], 'connected', ARGV[7], false)
end
emit(jk, ARGV[4], 'connected', {'agent', j.worker, 'detail', ARGV[7]}, j.number)
return lean({'id', ARGV[4], 'queue', QUEUE, 'number', j.number, 'state', 'connected', 'token', j.token,
  'worker', j.worker, 'connected', ARGV[6]})
