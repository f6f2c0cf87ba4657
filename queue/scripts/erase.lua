-- erase.lua: delete everything one queue holds about one number, at once.
-- KEYS[1] as in common.lua   KEYS[2] <prefix>:{Q}:quarantine   KEYS[3] <prefix>:{Q}:dedupe:<E164>
-- KEYS[4..] job hashes the caller found holding the number (SCAN), checked again here
-- ARGV[1..3] as in common.lua
-- ARGV[4] number (E.164)   ARGV[5] the last outcome-stream id the caller read ('0-0': none)
-- ARGV[6] the last event-stream id the caller read   ARGV[7] n, how many outcome ids follow
-- ARGV[8..7+n] outcome-stream ids the caller found naming the number; ARGV[8+n..] event-stream ids
-- Returns {'ok', erased job ids, dedupe keys deleted, outcome entries deleted, quarantine entries
-- deleted, event entries deleted}.
-- The caller's search is not atomic, this script is: a job is deleted only if it holds the
-- number now, the open promise made since the search is found through the dedupe key, and
-- outcome and event entries added since the search are read here (they are few: each stream
-- after ARGV[5] and ARGV[6]).
-- Aggregate counters (totals, outcome windows) hold no number and are left as they are.

local K_QUAR, K_DEDUPE, number = KEYS[2], KEYS[3], ARGV[4]
local erased, quarantined = {}, 0

local function erase_job(id)
  local jk = K_JOBP .. id
  if redis.call('HGET', jk, 'number') ~= number then
    return
  end
  ready_remove(id, redis.call('HGET', jk, 'targets'))
  for _, k in ipairs({K_DELAYED, K_LEASES, K_DONE, K_OPEN}) do
    redis.call('ZREM', k, id)
  end
  quarantined = quarantined + redis.call('HDEL', K_QUAR, id)
  redis.call('DEL', jk, K_HISTP .. id)
  erased[#erased + 1] = id
end

for i = 4, #KEYS do
  erase_job(string.sub(KEYS[i], #K_JOBP + 1))
end
local open = redis.call('GET', K_DEDUPE)
if open then
  erase_job(open)
end
local dedupe = redis.call('DEL', K_DEDUPE)

-- forget deletes the entries of stream key naming the number: the ids the caller found, then
-- whatever was added after the last id it read.
local function forget(key, last, first, stop)
  local n = 0
  for i = first, stop do
    n = n + redis.call('XDEL', key, ARGV[i])
  end
  for _, e in ipairs(redis.call('XRANGE', key, last, '+')) do
    local f = e[2]
    for j = 1, #f, 2 do
      if f[j] == 'number' and f[j + 1] == number then
        n = n + redis.call('XDEL', key, e[1])
      end
    end
  end
  return n
end

local n_out = tonumber(ARGV[7])
local entries = forget(K_OUT, ARGV[5], 8, 7 + n_out)
local events = forget(K_EVENTS, ARGV[6], 8 + n_out, #ARGV)
return {'ok', erased, dedupe, entries, quarantined, events}
