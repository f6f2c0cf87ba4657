-- enqueue.lua: open a promise, or merge the request into the number's open promise.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:dedupe:<E164>  open job id for this number
-- KEYS[3] <prefix>:{Q}:job:<new id>   hash of the job to create
-- ARGV[1..3] as in common.lua
-- ARGV[4] new id   ARGV[5] number (E.164)   ARGV[6] reason   ARGV[7] target ('' for none)
-- ARGV[8] not-before ms   ARGV[9] deadline ms   ARGV[10] max attempts
-- ARGV[11] the job's time to live ms: its max open age (it ends expired this long after it was
--          made, Store.Expire) and a retention after that
-- ARGV[12] the dedupe key's time to live ms: the max open age and an hour
-- ARGV[13] the call the request comes from, "<asterisk id>:<linkedid>" ('' for none)
-- ARGV[14..] the request's optional fields that it has, as field, value pairs named as in the
--          job hash: name, src_asterisk, src_linkedid, src_channel, note, at_risk_from_start
--          ('1' when the forecast said at once the deadline will be missed), external_ref (the
--          caller's id for the promise, e.g. a CRM ticket), hold_until (ms, the end of the
--          owner's preference window). Only those it has: each argument sent costs Redis a
--          string to parse and one to make, and most requests have none of them.
-- Returns {'ok', id} for a new promise (the caller has every field written), {'merged', job} when an open
-- one absorbed the request (the whole job, read back), {'duplicate', job or its id} when this
-- call already asked this (another daemon watching the same Asterisk, or this one before a
-- restart): nothing is changed.

local id, number, reason, target = ARGV[4], ARGV[5], ARGV[6], ARGV[7]

-- The call's "already requested" marker: <prefix>:{Q}:requested:<asterisk id>:<linkedid>, a
-- hash "<reason>/<target>" -> the promise it made or merged into. Checked and set here, in the
-- script that makes the promise, so two daemons ending the same call make one promise and a
-- crash between the check and the promise loses nothing. Derived from KEYS[1] like K_OPEN.
local req_key, req_field = nil, nil
if ARGV[13] ~= '' then
  req_key, req_field = K_BASE .. 'requested:' .. ARGV[13], reason .. '/' .. target
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
    redis.call('PEXPIRE', req_key, REQUESTED_MS)
  end
end

local open = redis.call('GET', KEYS[2])
if open then
  local jk = K_JOBP .. open
  local st = redis.call('HGET', jk, 'state')
  if st and OPEN[st] then
    local opt = {}
    for i = 14, #ARGV, 2 do
      opt[ARGV[i]] = ARGV[i + 1]
    end
    local name, note_in, ext = opt.name or '', opt.note or '', opt.external_ref or ''
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
    if ext ~= '' and (redis.call('HGET', jk, 'external_ref') or '') == '' then
      redis.call('HSET', jk, 'external_ref', ext)
    end
    -- A note tells the agent something the reasons do not (a voicemail cut by a socket gap),
    -- so the request's is added to the promise's, unless it is there already or the two
    -- together would be longer than any request may carry.
    if note_in ~= '' then
      local had = redis.call('HGET', jk, 'note') or ''
      local both = note_in
      if had ~= '' then
        both = had .. '; ' .. note_in
      end
      if not string.find(had, note_in, 1, true) and #both <= MAX_FIELD_LENGTH then
        redis.call('HSET', jk, 'note', both)
        changes[#changes + 1] = 'note added'
      end
    end
    local old_dl = tonumber(redis.call('HGET', jk, 'deadline'))
    if tonumber(ARGV[9]) < old_dl then
      redis.call('HSET', jk, 'deadline', ARGV[9])
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
  'created', NOW_S, 'not_before', ARGV[8], 'deadline', ARGV[9],
  'attempts', '0', 'max_attempts', ARGV[10], 'state', 'pending', 'hn', '0'}
local n = #fields
if target ~= '' then
  fields[n + 1], fields[n + 2], fields[n + 3], fields[n + 4] = 'target', target, 'owner', target
  n = n + 4
end
for i = 14, #ARGV do
  n = n + 1
  fields[n] = ARGV[i]
end
redis.call(unpack(fields, 1, n))
place(jk, id, ARGV[8], ARGV[9], target_list, false)
-- Both keys name or hold the number, so both end even if no daemon ever looks again: the
-- dedupe key an hour after the promise should have expired, the job a retention later.
redis.call('ZADD', K_OPEN, NOW_S, id)
redis.call('PEXPIRE', jk, ARGV[11])
redis.call('SET', KEYS[2], id, 'PX', ARGV[12])
redis.call('HINCRBY', K_TOTALS, 'made', '1')
event(jk, id, 'made', number, nil, nil, reason, nil, nil, ARGV[9], ARGV[8])
requested(id)
-- The caller knows every field written (Store.Enqueue builds the job from its request), so
-- the reply is only the id.
return {'ok', id}
