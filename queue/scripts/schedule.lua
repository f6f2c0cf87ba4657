-- schedule.lua: the open, unleased jobs as the dispatcher will meet them. Read-only.
-- KEYS[1] as in common.lua
-- ARGV[1..3] as in common.lua
-- ARGV[4] cap: most jobs read from each of ready and delayed
-- Returns {'ok', total, {deadline_ms, not_before_ms, id, owner, hold_until_ms, ...}}: total is
-- how many pending jobs there are in all; the list holds at most cap due jobs (earliest
-- deadline first) and cap delayed ones (earliest not-before first), five values each. A due
-- job's not-before is 0; hold_until is 0 when the job has none of its own.

local cap = tonumber(ARGV[4])
local out = {}
local ready = redis.call('ZRANGE', K_READY, 0, cap - 1, 'WITHSCORES')
local function describe(id)
  -- pcall here and below: a job key of another type (a broken record Claim will set aside)
  -- has no owner, hold or deadline.
  local owner, hold = unpack(redis.pcall('HMGET', K_JOBP .. id, 'owner', 'hold_until'))
  out[#out + 1] = id
  out[#out + 1] = owner or ''
  out[#out + 1] = tonumber(hold) or 0
end
for i = 2, #ready, 2 do
  out[#out + 1] = tonumber(ready[i])
  out[#out + 1] = 0
  describe(ready[i - 1])
end
local delayed = redis.call('ZRANGE', K_DELAYED, 0, cap - 1, 'WITHSCORES')
for i = 1, #delayed, 2 do
  local dl = tonumber(redis.pcall('HGET', K_JOBP .. delayed[i], 'deadline'))
  if dl then
    out[#out + 1] = dl
    out[#out + 1] = tonumber(delayed[i + 1])
    describe(delayed[i])
  end
end
return {'ok', redis.call('ZCARD', K_READY) + redis.call('ZCARD', K_DELAYED), out}
