-- expire.lua: end the promises that have been open longer than the queue's max open age.
-- KEYS[1] as in common.lua   KEYS[2] <prefix>:{Q}:quarantine (dead letters: id -> reason)
-- ARGV[1..3] as in common.lua
-- ARGV[4] max open age ms   ARGV[5] batch (most index entries read by one call)
-- ARGV[6] offset: how many leased entries earlier calls of this pass left in place
-- ARGV[7] the max open age as configured, for the history
-- Returns {'ok', looked, left, expired, quarantined}: looked is how many index entries were
-- read (the caller calls again while it equals the batch), left how many of them were leased
-- and left alone, expired the ids now finished expired, quarantined {id, reason, ...}.
-- A leased job (dialing, connected) is never expired: its callback may be talking to the
-- customer, and the worker must not find its promise ended under it. It stays in the open
-- index, so once its worker or Reclaim hands it back (pending) the next pass expires it; if it
-- is finished instead it leaves the index then.

local K_QUAR = KEYS[2]
local cutoff = now_ms() - tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', K_OPEN, '-inf', '(' .. cutoff, 'LIMIT', tonumber(ARGV[6]), tonumber(ARGV[5]))
local left, expired, quarantined = 0, {}, {}
for _, id in ipairs(ids) do
  local jk = K_JOBP .. id
  -- pcall: a job key of another type answers an error (a table), which broken names below.
  local st = redis.pcall('HGET', jk, 'state')
  if LEASED[st] then
    left = left + 1
  elseif type(st) == 'string' and not OPEN[st] then
    -- Finished by a script that did not know the index: nothing to end, only to forget.
    redis.call('ZREM', K_OPEN, id)
  else
    local why = broken(jk)
    if why then
      quarantine(K_QUAR, quarantined, id, why)
    else
      finish(jk, id, nil, 'expired', 'open longer than max_open_age ' .. ARGV[7])
      expired[#expired + 1] = id
    end
  end
end
housekeep()
return {'ok', #ids, left, expired, quarantined}
