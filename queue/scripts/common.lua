-- common.lua is prepended to every state-changing script (see scripts.go), so each script is
-- still one atomic EVALSHA while the bookkeeping every transition shares is written once.
--
-- Every script receives as KEYS[1] its queue's job-key prefix, <prefix>:{Q}:job: (job keys are
-- KEYS[1]..id), and its own keys after it. The prefix is declared so that a cluster routes the
-- script to the queue's slot; the queue's other keys are named from it (K_BASE, KEYS[1] without
-- job:), all under the hash tag {Q}, so in that slot too, where Redis lets a script use keys it
-- did not declare. Each key sent costs Redis a string to parse and a Lua string to make on
-- every call, whether the script uses it or not; a name made here is made only by the scripts
-- that use it (the prelude keeps only what a script names):
--   ready     zset id -> deadline ms (due now, EDF order)
--   delayed   zset id -> not-before ms
--   leases    zset id -> lease expiry ms
--   done      zset id -> finish ms (finished jobs still retained)
--   outcomes  stream of finished promises an earlier version wrote (a finish is now an event
--             of events); trimmed and erased, no longer written
--   fence     counter for fencing tokens
--   dedupe:   dedupe-key prefix; dedupe keys are dedupe:E164
--   totals    hash of lifetime counters (made, merged, one per outcome)
--   window:   outcome-bucket prefix; bucket keys are window:n, a hash of outcome -> count for
--             the promises finished in the n-th five-minute bucket since the epoch (see
--             Store.Outcomes)
-- and the same first three ARGV:
--   ARGV[1] now, unix ms, from the caller's clock (never Redis TIME, so fake clocks work)
--   ARGV[2] retention ms: how long a finished job stays readable
--   ARGV[3] queue name
-- Scripts answer {'ok', <job fields>} or {'err', code, detail}, code one of NOTFOUND, STALE,
-- STATE, OUTCOME, EMPTY. The job fields are a flat field/value list like HGETALL's: the whole
-- job (answer) for the callers that show it, or only the fields a hot-path caller reads (lean),
-- built from values the script already holds. A finish answers {'finished', values} instead
-- (finish), and a claim {'ok', values} (claim.lua): their values alone, in a fixed order.
local K_JOBP = KEYS[1]
local K_BASE = string.sub(K_JOBP, 1, -5)
local K_READY = K_BASE .. 'ready'
local K_DELAYED = K_BASE .. 'delayed'
local K_LEASES = K_BASE .. 'leases'
local K_DONE = K_BASE .. 'done'
local K_OUT = K_BASE .. 'outcomes'
local K_FENCE = K_BASE .. 'fence'
local K_DEDUPEP = K_BASE .. 'dedupe:'
local K_TOTALS = K_BASE .. 'totals'
local K_WINDOWP = K_BASE .. 'window:'
-- <prefix>:{Q}:open, zset id -> created ms of every open job (Store.Expire reads it oldest
-- first).
local K_OPEN = K_BASE .. 'open'
-- <prefix>:{Q}:events, the stream of everything that happens to a promise (Store.ReadEvents,
-- the API's /events, webhooks).
local K_EVENTS = K_BASE .. 'events'
-- The job's history is in its hash: field hn counts the entries written, and each entry is a
-- field h:<n> (n = 1, 2, ...) holding "<at>|<result>|<detail>" (history_fields). One field per
-- entry rather than one growing value keeps the hash in Redis' compact listpack encoding (every
-- value at most hash-max-listpack-value, 64 bytes), and an entry is written by the same HSET
-- as the change it records, with no key of its own to create and expire.
-- <prefix>:{Q}:history:<id> is where a job made before that (one without hn) keeps its
-- history: a list of JSON arrays [at, result, detail], which such a job goes on using until
-- it ends.
local K_HISTP = K_BASE .. 'history:'
-- NOW_S and RETENTION_S are now and the retention as the caller sent them: a string goes into a
-- command as it is, while Redis formats a Lua number again (%.17g) for every command that takes
-- it, and tonumber parses one with strtod; the two were a twentieth of a lifetime's
-- instructions in Redis. Scripts pass them on as they are, and ask now_ms() for the number only
-- where they compute with it.
local NOW_S = ARGV[1]
local RETENTION_S = ARGV[2]
local QUEUE = ARGV[3]

-- now_ms is now as a number, parsed once per value: a library keeps the last one across calls,
-- which is right for any call whose now is the same string.
local now_seen, now_n = nil, nil
local function now_ms()
  if now_seen ~= NOW_S then
    now_seen, now_n = NOW_S, tonumber(NOW_S)
  end
  return now_n
end

-- WINDOW_BUCKET_MS, PROMOTE_BATCH and the other constants the Go code shares are put before
-- this file by scripts.go (luaConstants), from the Go constants themselves.

local OPEN = {pending = true, dialing = true, connected = true}
local LEASED = {dialing = true, connected = true}

-- EVENTS_MAXLEN bounds the event stream between housekeeping runs; retention trims it by age.
local EVENTS_MAXLEN = '100000'

-- EVENT_FIELDS are the fields every event has, after type, promise, number and at (event).
local EVENT_FIELDS = {agent = true, attempts = true, reason = true, reasons = true, target = true, deadline = true,
  not_before = true, detail = true}

-- event appends one event about job jk (id) to the event stream, in the same script as the
-- change it reports, so a reader never sees a change without its event or the reverse. The
-- number is written so that a consumer need not read a job that may be gone by then (number:
-- the caller's copy, read from the job when nil); the customer's erasure deletes these entries
-- too (erase.lua). The stream is trimmed by age in housekeep only; MAXLEN ~ (cheap: whole
-- nodes) is the bound between.
-- Every event has the same fields in the same order, empty where it has no value (a reader
-- takes an empty field for an absent one): Redis then keeps the field names of a stream node
-- once, with its first entry, instead of with every entry whose fields differ from it, which is
-- most of them when the events of many promises interleave. They are event's arguments after
-- number, strings or nil for none: a Lua number would go into XADD in Redis' own float format.
-- more: a flat list of the fields outside these, which follow them with their names, or nil.
-- NO_FIELDS stands for no more fields: a library makes it once, where more or {} made a table
-- on every event.
local NO_FIELDS = {}
local function event(jk, id, typ, number, agent, attempts, reason, reasons, target, deadline, not_before, detail, more)
  redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    'type', typ, 'promise', id, 'number', number or redis.call('HGET', jk, 'number') or '', 'at', NOW_S,
    'agent', agent or '', 'attempts', attempts or '', 'reason', reason or '', 'reasons', reasons or '',
    'target', target or '', 'deadline', deadline or '', 'not_before', not_before or '', 'detail', detail or '',
    unpack(more or NO_FIELDS))
end

-- emit is event for a flat list extra of field, value pairs, in any order (a value may be a
-- number): for the scripts where a table more does not matter.
local function emit(jk, id, typ, extra, number)
  local f = {}
  local more, n
  if extra then
    for i = 1, #extra, 2 do
      local k, v = extra[i], extra[i + 1]
      if v ~= nil and v ~= '' then
        v = tostring(v)
        if EVENT_FIELDS[k] then
          f[k] = v
        else
          more, n = more or {}, n or 0
          more[n + 1], more[n + 2] = k, v
          n = n + 2
        end
      end
    end
  end
  event(jk, id, typ, number, f.agent, f.attempts, f.reason, f.reasons, f.target, f.deadline, f.not_before, f.detail,
    more)
end

local function fail(code, detail)
  return {'err', code, detail or ''}
end

-- history_json is the job's history list as one JSON array of its entries.
local function history_json(id)
  return '[' .. table.concat(redis.call('LRANGE', K_HISTP .. id, 0, -1), ',') .. ']'
end

-- answer is the whole job: its hash, which holds its history (h:<n>, counted by hn); a job
-- made before the history moved into the hash adds its list as field history_list.
local function answer(jk, id)
  local h = redis.call('HGETALL', jk)
  for i = 1, #h, 2 do
    if h[i] == 'hn' then
      return {'ok', h}
    end
  end
  h[#h + 1] = 'history_list'
  h[#h + 1] = history_json(id)
  return {'ok', h}
end

-- listed_answer is answer for the reads that list jobs (list.lua, page.lua): a job key that
-- is not a hash (a broken record) answers only its id and field unreadable, what Redis said,
-- which Store.List and Store.Page name and skip (unreadableField in job.go), so it hides no
-- other job.
local function listed_answer(jk, id)
  local ok, r = pcall(answer, jk, id)
  if ok then
    return r
  end
  return {'ok', {'id', id, 'unreadable', type(r) == 'table' and r.err or tostring(r)}}
end

-- str writes a reply value: Redis would turn a Lua number into an integer reply (or truncate
-- it), and the client reads every field as a string.
local function str(v)
  if type(v) == 'number' then
    return string.format('%d', v)
  end
  return v or ''
end

-- lean answers only the fields a caller reads: a flat field, value list with every value a
-- string. Fields left out decode as zero.
local function lean(fields)
  for i = 2, #fields, 2 do
    fields[i] = str(fields[i])
  end
  return {'ok', fields}
end

-- fetch reads the named fields of jk into a table by name (missing fields are nil).
local function fetch(jk, names)
  local v = redis.call('HMGET', jk, unpack(names))
  local t = {}
  for i, name in ipairs(names) do
    t[name] = v[i] or nil
  end
  return t
end

-- decode_list reads a JSON array field value; cjson turns an empty array into '{}', so both
-- mean empty.
local function decode_list(raw)
  if not raw or raw == '' or raw == '{}' then
    return {}
  end
  return cjson.decode(raw)
end

local function json_list(jk, field)
  return decode_list(redis.call('HGET', jk, field))
end

-- HISTORY_MAX bounds a history: releases (agent did not answer) can repeat without end, so it
-- keeps its first entry and the latest ones, at most this many in all.
local HISTORY_MAX = 100

-- history_fields answers the field, value pairs that append an entry to the history of a job
-- whose hn (entries written so far) is known, for the caller to add to the HSET it writes
-- anyway. Past HISTORY_MAX it drops the oldest entry but the first. An entry is
-- "<at ms>|<result>" or "<at ms>|<result>|<detail>" (a result never holds '|'; the detail is
-- the rest, whatever it holds): without JSON's brackets and quotes a longer detail still fits
-- the listpack's 64 bytes.
local function history_fields(jk, hn, result, detail)
  local n = tonumber(hn) + 1
  if n > HISTORY_MAX then
    redis.call('HDEL', jk, 'h:' .. (n - HISTORY_MAX + 1))
  end
  local entry = NOW_S .. '|' .. result
  if detail and detail ~= '' then
    entry = entry .. '|' .. detail
  end
  -- Formatted once as a whole number: given as a Lua number, both the value and the name
  -- would be formatted as floats.
  local ns = string.format('%d', n)
  return {'hn', ns, 'h:' .. ns, entry}
end

-- append adds the pairs of more to the flat list into.
local function append(into, more)
  for _, v in ipairs(more) do
    into[#into + 1] = v
  end
  return into
end

-- note appends to the job's history. hn: the job's hn field when the caller read it (false or
-- nil when the job has none, read here when not given at all). A job without hn was made
-- before the history moved into the hash: its entries go on in its list, which is made by its
-- first entry and then takes the job's time to live (finish and quarantine shorten both
-- together).
local function note(jk, id, result, detail, hn)
  if hn == nil then
    hn = redis.call('HGET', jk, 'hn')
  end
  if hn then
    redis.call('HSET', jk, unpack(history_fields(jk, hn, result, detail)))
    return
  end
  local hk = K_HISTP .. id
  local entry = {now_ms(), result}
  if detail and detail ~= '' then
    entry[3] = detail
  end
  local n = redis.call('RPUSH', hk, cjson.encode(entry))
  if n == 1 then
    local ttl = redis.call('PTTL', jk)
    if ttl > 0 then
      redis.call('PEXPIRE', hk, ttl)
    end
  elseif n > HISTORY_MAX then
    local first = redis.call('LINDEX', hk, 0)
    redis.call('LTRIM', hk, n - HISTORY_MAX + 1, -1)
    redis.call('LPUSH', hk, first)
  end
end

-- contains says whether list holds v.
local function contains(list, v)
  for _, x in ipairs(list) do
    if x == v then
      return true
    end
  end
  return false
end

-- ONE_WORD_LIST matches a JSON list of one string that needs no escape, capturing the string:
-- how a job's reasons and targets usually read, seen without cjson.
local ONE_WORD_LIST = '^%["([^%c"\\\128-\255]*)"%]$'

-- one_list is the one-element JSON list of v, written by hand when the value needs no escaping
-- (reasons are vocabulary words, targets extensions): cjson costs more than the rest of an
-- enqueue's Lua.
local function one_list(v)
  if string.find(v, '[%c"\\\128-\255]') then
    return cjson.encode({v})
  end
  return '["' .. v .. '"]'
end

-- <prefix>:{Q}:for:<target>, zset id -> deadline of the ready jobs that name target among
-- their targets: a claim preferring its agent's extension finds the agent's own jobs among the
-- earliest due ones here instead of reading their hashes. It holds ids and deadlines only, and
-- follows ready exactly: every script adding to ready or taking from it does the same here.
local K_FORP = K_BASE .. 'for:'

-- targets_of decodes a targets field value; empty when there is none or it is unreadable. A
-- caller that holds the list already (a new job's) passes it as a table.
local function targets_of(raw)
  if type(raw) == 'table' then
    return raw
  end
  -- The usual value, one extension, is read without cjson.
  local one = raw and string.match(raw, ONE_WORD_LIST)
  if one then
    return {one}
  end
  local ok, t = pcall(decode_list, raw)
  if ok and type(t) == 'table' then
    return t
  end
  return {}
end

local function ready_add(id, dl, targets)
  redis.call('ZADD', K_READY, dl, id)
  for _, t in ipairs(targets_of(targets)) do
    redis.call('ZADD', K_FORP .. t, dl, id)
  end
end

local function ready_remove(id, targets)
  redis.call('ZREM', K_READY, id)
  for _, t in ipairs(targets_of(targets)) do
    redis.call('ZREM', K_FORP .. t, id)
  end
end

-- place puts a pending job where Claim will find it: delayed until its not-before, then ready
-- ordered by deadline. It tells every dispatcher sharing this Redis (Store.Wakeups) that the
-- queue has work: PUBLISH takes no key, so it is allowed in a script on Redis Cluster too, and
-- the channel <prefix>:{Q}:wake is KEYS[1] with job: replaced. nb, dl and targets are the
-- job's not-before, deadline and targets (read when nb or dl is nil); indexed says the job may
-- already sit in ready or delayed (a pending job moved), false for one that is in neither (new,
-- or back from a lease).
local function place(jk, id, nb, dl, targets, indexed)
  redis.call('PUBLISH', K_BASE .. 'wake', 'pending')
  if not nb or not dl then
    nb, dl, targets = unpack(redis.call('HMGET', jk, 'not_before', 'deadline', 'targets'))
  end
  if indexed then
    redis.call('ZREM', K_DELAYED, id)
  end
  if nb ~= NOW_S and tonumber(nb) > now_ms() then
    if indexed then
      ready_remove(id, targets)
    end
    redis.call('ZADD', K_DELAYED, nb, id)
  else
    -- ZADD moves an entry already there to its new deadline.
    ready_add(id, dl, targets)
  end
end

-- unindex takes id out of the one index its state st puts it in: leases for a leased job,
-- ready or delayed for a pending one (a due job may still sit in delayed until a Claim
-- promotes it, so both), every one when the state is unknown. targets: the job's, for the
-- ready index (read when nil).
local function unindex(id, st, targets)
  if LEASED[st] then
    redis.call('ZREM', K_LEASES, id)
    return
  end
  -- pcall: a job key that is not a hash (a broken record, quarantine) answers an error, which
  -- reads as no targets.
  ready_remove(id, targets or redis.pcall('HGET', K_JOBP .. id, 'targets'))
  redis.call('ZREM', K_DELAYED, id)
  if st ~= 'pending' then
    redis.call('ZREM', K_LEASES, id)
  end
end

-- fence_check checks that the caller's token is the current lease's of job jk, whose state
-- st and token tok (false when absent) the script has read; it answers an error reply or nil.
-- The token is compared before the state so a worker whose lease was reclaimed learns exactly
-- that, not a confusing state error.
local function fence_check(jk, st, tok, token, allowed)
  if not st and redis.call('EXISTS', jk) == 0 then
    return fail('NOTFOUND')
  end
  if tok ~= token then
    return fail('STALE', st)
  end
  if not allowed[st] then
    return fail('STATE', st)
  end
  return nil
end

-- fenced is fence_check reading state, token and the fields in names in one HMGET; it
-- answers an error reply, or nil and the fields by name.
local function fenced(jk, token, allowed, names)
  local want = {'state', 'token'}
  for _, n in ipairs(names or {}) do
    want[#want + 1] = n
  end
  local j = fetch(jk, want)
  return fence_check(jk, j.state, j.token, token, allowed), j
end

-- housekeep forgets what the retention period has run out for: finished ids in the done index
-- (their hashes expire on their own) and the entries of the outcome and event streams, which
-- hold numbers too. It runs in the periodic sweeps only (Reclaim, Expire), not when a promise
-- finishes: between two sweeps the streams hold at most a sweep interval's entries past the
-- retention, and the XADDs' MAXLEN ~ bounds them by count in any case. Stream ids are Redis'
-- own clock, hence TIME for that cut-off.
local function housekeep()
  local retention = tonumber(RETENTION_S)
  redis.call('ZREMRANGEBYSCORE', K_DONE, '-inf', '(' .. (now_ms() - retention))
  local t = redis.call('TIME')
  local redis_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XTRIM', K_OUT, 'MINID', redis_ms - retention)
  redis.call('XTRIM', K_EVENTS, 'MINID', redis_ms - retention)
end

-- FINISH_FIELDS are what finish reads of a job, in the order it reads them: a fenced script
-- reads them with one HMGET (the state and token first for its fence_check) and passes the
-- values in, so finish reads nothing again.
local FINISH_FIELDS = {'state', 'token', 'number', 'deadline', 'attempts', 'max_attempts', 'target', 'reasons',
  'not_before', 'created', 'connected', 'worker', 'targets', 'hn'}

-- finish closes a promise: out of the open sets, into done, onto the event stream, dedupe
-- released so the next request for this number opens a new promise, and the hash set to expire.
-- The outcome is the final state; it has no field of its own (an earlier version's jobs still
-- carry one), which is one field less in every finished job kept for the retention.
-- v holds the job's FINISH_FIELDS values in their order (read here when nil). It answers
-- {'finished', values}: the values of finishedFields (transitions.go), which are what
-- Complete's and Retry's callers read, in its order. Without their names, which would double
-- what Redis converts into the reply.
local function finish(jk, id, v, outcome, detail)
  v = v or redis.call('HMGET', jk, unpack(FINISH_FIELDS))
  local st, _, number, deadline, attempts, max_attempts, target, reasons, not_before, created, connected, worker,
    targets, hn = unpack(v)
  unindex(id, st, targets)
  redis.call('ZREM', K_OPEN, id)
  if hn then
    local hist = history_fields(jk, hn, outcome, detail)
    redis.call('HSET', jk, 'state', outcome, 'finished', NOW_S, 'lease_expires', '0',
      hist[1], hist[2], hist[3], hist[4])
  else
    redis.call('HSET', jk, 'state', outcome, 'finished', NOW_S, 'lease_expires', '0')
    note(jk, id, outcome, detail, false)
  end
  number = number or ''
  local dk = K_DEDUPEP .. number
  if redis.call('GET', dk) == id then
    redis.call('DEL', dk)
  end
  -- The first reason, without a JSON decode: reasons are vocabulary words, which need no
  -- escapes; anything else is decoded.
  local reason = string.match(reasons or '', '^%["([^"\\]*)"')
  if not reason then
    local ok, list = pcall(decode_list, reasons)
    reason = ok and type(list) == 'table' and list[1] or ''
  end
  redis.call('ZADD', K_DONE, NOW_S, id)
  -- The finish is one entry of the event stream, which says everything an audit of the outcome
  -- reads (the reasons, target and deadline besides the event's own fields). The outcome
  -- stream (K_OUT) is no longer written: a second entry per finished promise was a command, a
  -- hundred-odd bytes kept for the retention, and as much again in the AOF. What an earlier
  -- version wrote there is still trimmed, exported and erased.
  event(jk, id, outcome, number, nil, attempts, reason, reasons, target, deadline, nil, detail)
  redis.call('HINCRBY', K_TOTALS, outcome, '1')
  -- Lifetime totals cannot say how the last hour went, and counting the done index by state
  -- would read every retained job; a small hash per five minutes answers any recent window
  -- with a bounded read. It lives one bucket past the retention, the longest window asked for.
  local wk = K_WINDOWP .. string.format('%d', math.floor(now_ms() / WINDOW_BUCKET_MS))
  -- The bucket is made by the first count of some outcome in it, so its expiry is set then.
  if redis.call('HINCRBY', wk, outcome, '1') == 1 then
    redis.call('PEXPIRE', wk, string.format('%d', tonumber(RETENTION_S) + WINDOW_BUCKET_MS))
  end
  redis.call('PEXPIRE', jk, RETENTION_S)
  if not hn then
    redis.call('PEXPIRE', K_HISTP .. id, RETENTION_S)
  end
  return {'finished', {id, QUEUE, number, outcome, reasons or '', target or '', created or '', not_before or '',
    deadline or '', attempts or '', max_attempts or '', connected or '', NOW_S, worker or ''}}
end

-- release_lease hands a leased job back to pending. Clearing the token is the fence: whoever
-- held the old one is refused from now on, and the next Claim issues a higher one. nb and dl
-- and targets as for place.
local function release_lease(jk, id, nb, dl, targets)
  redis.call('ZREM', K_LEASES, id)
  redis.call('HSET', jk, 'state', 'pending', 'token', '0', 'worker', '', 'lease_expires', 0,
    'connected', 0, 'dialled', 0)
  place(jk, id, nb, dl, targets, false)
end

-- BROKEN_FIELDS are what broken_values looks at, in its order; claim.lua reads them first, in
-- this order, with the rest of what it answers.
local BROKEN_FIELDS = {'id', 'number', 'created', 'deadline', 'not_before', 'attempts', 'max_attempts',
  'reasons', 'targets', 'history'}

-- bad_list names a JSON list field that does not decode. The usual value, a one-element list
-- of a word (a reason, an extension), or an empty one, is seen to be one without cjson.
local function bad_list(raw, name)
  if not raw or raw == '' or raw == '[]' or string.find(raw, ONE_WORD_LIST) then
    return nil
  end
  if not pcall(cjson.decode, raw) then
    return 'field ' .. name .. ' is not JSON'
  end
  return nil
end

-- NOT_A_HASH is the quarantine reason of a job key that holds another type than a hash: a
-- redis.pcall of a hash command on it answers an error table.
local NOT_A_HASH = 'job key is not a hash'

-- broken_values is broken for a job's BROKEN_FIELDS values as HMGET answers them (false for a
-- missing field), in that order, or as redis.pcall answers its error (a key of another type).
local function broken_values(v)
  if not v[1] then
    if v.err then
      return NOT_A_HASH
    end
    return 'job hash missing'
  end
  if not v[2] or v[2] == '' then
    return 'field number missing'
  end
  -- The usual job (five whole numbers, a one-word reason list and target list, no history
  -- list) is seen to be whole by one pattern over its values joined: a tonumber and a find per
  -- field were a fourteenth of a claim's time in Redis. The joins cannot make a broken job pass:
  -- no number holds a '|', no list a newline. Anything else is looked at field by field.
  local a, b, c, d, e, r, t = v[3], v[4], v[5], v[6], v[7], v[8], v[9]
  if a and b and c and d and e and r and t and not v[10] and string.find(a .. '|' .. b .. '|' .. c .. '|' .. d .. '|'
    .. e .. '|' .. r .. '\n' .. t, '^%d+|%d+|%d+|%d+|%d+|%["[^%c"\\\128-\255]*"%]\n%["[^%c"\\\128-\255]*"%]$') then
    return nil
  end
  for i = 3, 7 do
    if not tonumber(v[i]) then
      return 'field ' .. BROKEN_FIELDS[i] .. ' missing or not a number'
    end
  end
  for i = 8, 10 do
    local why = bad_list(v[i], BROKEN_FIELDS[i])
    if why then
      return why
    end
  end
  return nil
end

-- broken names what makes a job unusable, or returns nil. A ready or leased id whose hash is
-- gone, or a hash without the fields every transition reads, would otherwise make every claim
-- or reclaim of its queue fail for good.
local function broken(jk)
  return broken_values(redis.pcall('HMGET', jk, unpack(BROKEN_FIELDS)))
end

-- quarantine takes a broken job out of every index into the queue's dead-letter hash kq
-- (id -> {at, reason}), so the queue goes on; the job hash, if any, is left for an operator
-- to read. quarantined collects {id, reason} pairs for the script's reply.
local function quarantine(kq, quarantined, id, reason)
  unindex(id, nil)
  redis.call('ZREM', K_OPEN, id)
  -- The hash holds the customer's number: it stays for an operator as long as a finished
  -- promise would, not for ever.
  redis.call('PEXPIRE', K_JOBP .. id, RETENTION_S)
  redis.call('PEXPIRE', K_HISTP .. id, RETENTION_S)
  redis.call('HSET', kq, id, cjson.encode({at = now_ms(), reason = reason}))
  redis.call('HINCRBY', K_TOTALS, 'quarantined', '1')
  quarantined[#quarantined + 1] = id
  quarantined[#quarantined + 1] = reason
end
