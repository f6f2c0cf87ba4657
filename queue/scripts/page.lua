-- page.lua: one page of jobs for Store.Page, earliest deadline first after a cursor. Read-only.
-- KEYS[1] as in common.lua
-- ARGV[1..3] as in common.lua
-- ARGV[4] states wanted, comma-separated ('' for all)
-- ARGV[5] limit: most jobs returned from each source
-- ARGV[6] cap: most ids read from the delayed, leases and done sets (ready is read in order)
-- ARGV[7] cursor deadline ms   ARGV[8] cursor id: only jobs after (deadline, id) ('' id: from the start)
-- ARGV[9] number (E.164) the jobs must hold, '' for any
-- Returns a list of jobs as answer (common.lua) gives them, each with field page_place (see first): from each source its first limit jobs after the cursor in
-- (deadline, id) order. The ready set is scored by deadline and ties are ordered by id, so it
-- is read from the cursor on; the other sets are scored otherwise and are read up to the cap
-- (they are small: retries waiting, calls in progress, finished jobs retained). The caller
-- merges the sources and cuts the page.

local want_raw, limit, cap = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local after_dl, after_id, number = tonumber(ARGV[7]), ARGV[8], ARGV[9]
local want = nil
if want_raw ~= '' then
  want = {}
  for s in string.gmatch(want_raw, '[^,]+') do
    want[s] = true
  end
end

local function after(dl, id)
  if after_id == '' then
    return true
  end
  return dl > after_dl or (dl == after_dl and id > after_id)
end

-- fits reads the fields the filters need and says whether job id passes them. score: the
-- job's in the ready set, when it was read from there; a job whose deadline is not a number
-- (a broken record, which Store.Page leaves out and names) is ordered by it, so that reading
-- ready from a cursor counts it where it stands, or by 0 when it is not in ready.
local function fits(id, score)
  local r = redis.pcall('HMGET', K_JOBP .. id, 'state', 'deadline', 'number')
  if r.err then
    -- A key of another type: answered as unreadable (listed_answer) for Store.Page to name,
    -- unless the page is one customer's, whose number it cannot be shown to hold.
    local dl = tonumber(score) or 0
    if number ~= '' or not after(dl, id) then
      return nil
    end
    return dl
  end
  local st, dl, num = unpack(r)
  if not st then
    return nil
  end
  dl = tonumber(dl) or tonumber(score) or 0
  if want and not want[st] then
    return nil
  end
  if number ~= '' and num ~= number then
    return nil
  end
  if not after(dl, id) then
    return nil
  end
  return dl
end

local out = {}
-- first keeps the limit earliest of the candidates {dl, id} and appends their hashes, each
-- with the deadline it was ordered by as field page_place (pagePlaceField in page.go).
local function first(cands)
  table.sort(cands, function(a, b)
    if a[1] ~= b[1] then
      return a[1] < b[1]
    end
    return a[2] < b[2]
  end)
  for i = 1, math.min(limit, #cands) do
    local h = listed_answer(K_JOBP .. cands[i][2], cands[i][2])[2]
    h[#h + 1] = 'page_place'
    h[#h + 1] = string.format('%d', cands[i][1])
    out[#out + 1] = h
  end
end

-- scan looks at ids; scores, when given, maps each to its score in the ready set.
local function scan(ids, scores)
  local cands = {}
  for _, id in ipairs(ids) do
    local dl = fits(id, scores and scores[id])
    if dl then
      cands[#cands + 1] = {dl, id}
    end
  end
  first(cands)
end

if number ~= '' then
  -- A number has at most one open job per queue (the dedupe key) and some finished ones.
  local ids = {}
  local open = redis.call('GET', K_DEDUPEP .. number)
  if open then
    ids[1] = open
  end
  for _, id in ipairs(redis.call('ZREVRANGE', K_DONE, 0, cap - 1)) do
    ids[#ids + 1] = id
  end
  scan(ids)
  return out
end

if not want or want['pending'] then
  -- Ready, from the cursor on: the cursor's own entry when it is still there, else the
  -- deadlines from the cursor's (its ties read and skipped).
  local got, scores = {}, {}
  local start = nil
  if after_id ~= '' then
    local rank = redis.call('ZRANK', K_READY, after_id)
    local score = redis.call('ZSCORE', K_READY, after_id)
    if rank and tonumber(score) == after_dl then
      start = rank + 1
    end
  else
    start = 0
  end
  local function take(withscores, skip_to)
    for i = 1, #withscores, 2 do
      local id = withscores[i]
      if not skip_to or id > skip_to then
        got[#got + 1] = id
        scores[id] = withscores[i + 1]
      end
    end
  end
  if start then
    take(redis.call('ZRANGE', K_READY, start, start + limit - 1, 'WITHSCORES'))
  else
    take(redis.call('ZRANGEBYSCORE', K_READY, after_dl, after_dl, 'WITHSCORES'), after_id)
    take(redis.call('ZRANGEBYSCORE', K_READY, '(' .. after_dl, '+inf', 'WITHSCORES', 'LIMIT', 0, limit))
  end
  scan(got, scores)
  scan(redis.call('ZRANGE', K_DELAYED, 0, cap - 1))
end
if not want or want['dialing'] or want['connected'] then
  scan(redis.call('ZRANGE', K_LEASES, 0, cap - 1))
end
local finished = not want
if want then
  for s, _ in pairs(want) do
    if not OPEN[s] then
      finished = true
    end
  end
end
if finished then
  scan(redis.call('ZREVRANGE', K_DONE, 0, cap - 1))
end
return out
