-- list.lua: read jobs for List, atomically so no job is seen twice or missed mid-move.
-- KEYS[1] as in common.lua
-- ARGV[1..3] as in common.lua
-- ARGV[4] which sets to read, a string of letters: r=ready d=delayed l=leases f=done
-- ARGV[5] limit   ARGV[6] cap on delayed/leased jobs read
-- Returns a list of jobs as answer (common.lua) gives them. Ready jobs are read in deadline order up to limit; delayed
-- and leased ones up to the cap (they are few: retries waiting and calls in progress); finished
-- ones most recent first up to limit. The caller filters by state and sorts by deadline.

local which, limit, cap = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {}
local function read(ids)
  for _, id in ipairs(ids) do
    local r = listed_answer(K_JOBP .. id, id)
    if #r[2] > 2 then
      out[#out + 1] = r[2]
    end
  end
end
if string.find(which, 'r', 1, true) then
  read(redis.call('ZRANGE', K_READY, 0, limit - 1))
end
if string.find(which, 'd', 1, true) then
  read(redis.call('ZRANGE', K_DELAYED, 0, cap - 1))
end
if string.find(which, 'l', 1, true) then
  read(redis.call('ZRANGE', K_LEASES, 0, cap - 1))
end
if string.find(which, 'f', 1, true) then
  read(redis.call('ZREVRANGE', K_DONE, 0, limit - 1))
end
return out
