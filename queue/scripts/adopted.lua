-- adopted.lua: record that the customer of a claim whose worker died talks to the agent — a
-- janitor found the claim's two legs answered and bridged on the PBX — so the promise is not
-- read as an unanswered dial and the customer is not rung again after talking to an agent.
-- KEYS[1] as in common.lua
-- KEYS[2] <prefix>:{Q}:job:<id>
-- ARGV[1..3] as in common.lua
-- ARGV[4] id   ARGV[5] the dead claim's fencing token   ARGV[6] connect time ms
-- ARGV[7] worker taking the adopted claim   ARGV[8] lease ms
-- Returns {'ok', lean job: id, queue, number, state, token, worker, lease_expires, connected}
-- (connected, leased to ARGV[7]) or {'err', NOTFOUND|STALE|STATE, state}.
-- Three cases. The claim is still leased (dialing, its token current): it becomes connected, as
-- connected.lua would have made it. Or its lease ran out first and Reclaim handed it back
-- (reclaimed_token is this claim's) and it is pending, or claimed again by a callback that has
-- not rung the customer yet (dialled 0): the attempt Reclaim charged is given back and the
-- promise is leased again, connected, to the adopting worker — the newer claim finds its token
-- stale before it rings the customer. Either way its lease expiry then finishes it kept or late
-- by the connect time (reclaim.lua), once. A promise whose newer claim rang the customer, or
-- one finished, is left alone: STALE or STATE.

local jk, id, token = KEYS[2], ARGV[4], ARGV[5]
if redis.call('EXISTS', jk) == 0 then
  return fail('NOTFOUND')
end
local st, tok, rtok, charged, number, worker, expires, dialled = unpack(redis.call('HMGET', jk, 'state', 'token',
  'reclaimed_token', 'reclaimed_charged', 'number', 'worker', 'lease_expires', 'dialled'))
local detail = 'customer talking with the agent when their callback\'s daemon was gone; adopted by ' .. ARGV[7]
if st == 'dialing' and tok == token then
  redis.call('HSET', jk, 'state', 'connected', 'connected', ARGV[6])
elseif rtok == token and (st == 'pending' or (st == 'dialing' and dialled == '0')) then
  if charged == '1' then
    redis.call('HINCRBY', jk, 'attempts', -1)
  end
  expires = now_ms() + tonumber(ARGV[8])
  local fresh = redis.call('INCR', K_FENCE)
  tok, worker = fresh, ARGV[7]
  ready_remove(id, redis.call('HGET', jk, 'targets'))
  redis.call('ZREM', K_DELAYED, id)
  redis.call('ZADD', K_LEASES, expires, id)
  redis.call('HSET', jk, 'state', 'connected', 'token', fresh, 'worker', ARGV[7],
    'lease_expires', expires, 'connected', ARGV[6], 'dialled', ARGV[6], 'reclaimed_token', 0)
elseif tok ~= token and (rtok ~= token or st == 'dialing' or st == 'connected') then
  return fail('STALE', st)
else
  return fail('STATE', st)
end
note(jk, id, 'connected', detail)
emit(jk, id, 'connected', {'agent', worker, 'detail', detail}, number)
return lean({'id', id, 'queue', QUEUE, 'number', number, 'state', 'connected', 'token', tok, 'worker', worker,
  'lease_expires', expires, 'connected', ARGV[6]})
