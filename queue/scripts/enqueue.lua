-- enqueue.lua: open a promise, or merge the request into the number's open promise.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:dedupe:<E164>  open job id for this number
-- KEYS[3] <prefix>:{Q}:job:<new id>   hash of the job to create
-- ARGV[1..3] as in common.lua
-- ARGV[4] new id   ARGV[5] number (E.164)   ARGV[6] name   ARGV[7] reason   ARGV[8] target
-- ARGV[9] not-before ms   ARGV[10] deadline ms   ARGV[11] max attempts
-- ARGV[12] asterisk id   ARGV[13] linkedid   ARGV[14] channel   ARGV[15] note
-- ARGV[16] hold-until ms (end of the owner's preference window; 0: the claim's share)
-- ARGV[17] at risk from start ('1' when the forecast said at once the deadline will be missed)
-- ARGV[18] the job's time to live ms: its max open age (it ends expired this long after it was made,
--          Store.Expire) and a retention after that
-- ARGV[19] external reference (the caller's id for the promise, e.g. a CRM ticket); '' for none
-- ARGV[20] the call the request comes from, "<asterisk id>:<linkedid>" ('' for none)
-- ARGV[21] what the call asks, "<reason>/<target>"   ARGV[22] how long that is remembered, ms
-- ARGV[23] the longest note a merge may leave, bytes (the longest a request may carry)
-- ARGV[24] the dedupe key's time to live ms: the max open age and an hour
-- Returns {'ok', id} for a new promise (the caller has every field written), {'merged', job} when an open
-- one absorbed the request (the whole job, read back), {'duplicate', job or its id} when this
-- call already asked this (another daemon watching the same Asterisk, or this one before a
-- restart): nothing is changed.

local id, number, name, reason, target = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local nb, deadline = tonumber(ARGV[9]), tonumber(ARGV[10])

local function contains(list, v)
  for _, x in ipairs(list) do
    if x == v then
      return true
    end
  end
  return false
end

-- The call's "already requested" marker: <prefix>:{Q}:requested:<asterisk id>:<linkedid>, a
-- hash "<reason>/<target>" -> the promise it made or merged into. Checked and set here, in the
-- script that makes the promise, so two daemons ending the same call make one promise and a
-- crash between the check and the promise loses nothing. Derived from KEYS[1] like K_OPEN.
local req_key, req_field = nil, ARGV[21]
if ARGV[20] and ARGV[20] ~= '' then
  req_key = K_BASE .. 'requested:' .. ARGV[20]
  local made = redis.call('HGET', req_key, req_field)
  if made then
    if redis.call('EXISTS', K_JOBP .. made) == 1 then
      local r = answer(K_JOBP .. made, made)
      r[1] = 'duplicate'
      return r
    end
    return {'duplicate', made}
  end
end
local function requested(job_id)
  if req_key then
    redis.call('HSET', req_key, req_field, job_id)
    redis.call('PEXPIRE', req_key, tonumber(ARGV[22]))
  end
end

local open = redis.call('GET', KEYS[2])
if open then
  local jk = K_JOBP .. open
  local st = redis.call('HGET', jk, 'state')
  if st and OPEN[st] then
    local changes = {'reason=' .. reason}
    local reasons = json_list(jk, 'reasons')
    if not contains(reasons, reason) then
      reasons[#reasons + 1] = reason
      redis.call('HSET', jk, 'reasons', cjson.encode(reasons))
    end
    if target ~= '' then
      changes[#changes + 1] = 'target=' .. target
      local targets = json_list(jk, 'targets')
      if not contains(targets, target) then
        targets[#targets + 1] = target
        redis.call('HSET', jk, 'targets', cjson.encode(targets))
      end
      if (redis.call('HGET', jk, 'target') or '') == '' then
        redis.call('HSET', jk, 'target', target, 'owner', target)
      end
    end
    if name ~= '' and (redis.call('HGET', jk, 'name') or '') == '' then
      redis.call('HSET', jk, 'name', name)
    end
    if (ARGV[19] or '') ~= '' and (redis.call('HGET', jk, 'external_ref') or '') == '' then
      redis.call('HSET', jk, 'external_ref', ARGV[19])
    end
    -- A note tells the agent something the reasons do not (a voicemail cut by a socket gap),
    -- so the request's is added to the promise's, unless it is there already or the two
    -- together would be longer than any request may carry.
    if ARGV[15] ~= '' then
      local had = redis.call('HGET', jk, 'note') or ''
      local both = ARGV[15]
      if had ~= '' then
        both = had .. '; ' .. ARGV[15]
      end
      if not string.find(had, ARGV[15], 1, true) and #both <= tonumber(ARGV[23]) then
        redis.call('HSET', jk, 'note', both)
        changes[#changes + 1] = 'note added'
      end
    end
    local old_dl = tonumber(redis.call('HGET', jk, 'deadline'))
    if deadline < old_dl then
      redis.call('HSET', jk, 'deadline', deadline)
      changes[#changes + 1] = 'deadline moved earlier'
    end
    -- The not-before is left as it is: a job that is due stays due, and a hold in force (a
    -- Retry backoff, a Release until calling hours open) is not cut short by a new request.
    -- A leased job is being dialled; its new deadline takes effect in the hash, and its place
    -- in the sets is left to whoever finishes the call.
    if st == 'pending' then
      place(jk, open, nil, nil, nil, true)
    end
    note(jk, open, 'merged', table.concat(changes, ' '))
    emit(jk, open, 'merged', {'reason', reason, 'deadline', redis.call('HGET', jk, 'deadline'),
      'detail', table.concat(changes, ' ')})
    redis.call('HINCRBY', K_TOTALS, 'merged', '1')
    requested(open)
    local r = answer(jk, open)
    r[1] = 'merged'
    return r
  end
  -- The dedupe key outlived its job (it should not); fall through and open a new promise.
end

local jk = KEYS[3]
-- A one-element JSON list, written by hand when the value needs no escaping (reasons are
-- vocabulary words, targets extensions): cjson costs more than the rest of this script's Lua.
local function one_list(v)
  if string.find(v, '[%c"\\\128-\255]') then
    return cjson.encode({v})
  end
  return '["' .. v .. '"]'
end
local targets, target_list = '[]', {}
if target ~= '' then
  targets, target_list = one_list(target), {target}
end
-- Fields without a value yet (lease, outcome, an empty name or note) are left out: an absent
-- field reads as empty or zero everywhere, and a smaller hash stays in Redis' compact
-- encoding. Times go in as the caller sent them (strings), not as Lua numbers Redis would
-- have to format again.
local fields = {'HSET', jk,
  'id', id, 'queue', QUEUE, 'number', number,
  'reasons', one_list(reason), 'targets', targets,
  'created', ARGV[1], 'not_before', ARGV[9], 'deadline', ARGV[10],
  'attempts', '0', 'max_attempts', ARGV[11], 'state', 'pending', 'hn', '0'}
local n = #fields
local function optional(name, v)
  if v and v ~= '' then
    fields[n + 1], fields[n + 2] = name, v
    n = n + 2
  end
end
optional('name', name)
optional('target', target)
optional('owner', target)
optional('src_asterisk', ARGV[12])
optional('src_linkedid', ARGV[13])
optional('src_channel', ARGV[14])
optional('note', ARGV[15])
optional('at_risk_from_start', ARGV[17])
optional('external_ref', ARGV[19])
if (tonumber(ARGV[16]) or 0) ~= 0 then
  optional('hold_until', ARGV[16])
end
redis.call(unpack(fields))
place(jk, id, ARGV[9], ARGV[10], target_list, false)
-- Both keys name or hold the number, so both end even if no daemon ever looks again: the
-- dedupe key an hour after the promise should have expired, the job a retention later.
redis.call('ZADD', K_OPEN, NOW_S, id)
redis.call('PEXPIRE', jk, ARGV[18])
redis.call('SET', KEYS[2], id, 'PX', ARGV[24])
redis.call('HINCRBY', K_TOTALS, 'made', '1')
event(jk, id, 'made', number, nil, nil, reason, nil, nil, ARGV[10], ARGV[9])
requested(id)
-- The caller knows every field written (Store.Enqueue builds the job from its request), so
-- the reply is only the id.
return {'ok', id}
