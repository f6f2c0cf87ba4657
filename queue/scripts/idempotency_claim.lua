-- idempotency_claim.lua: take an idempotency key for a request, or read what it made.
-- Standalone (no common.lua): the key belongs to no queue.
-- KEYS[1] <prefix>:idempotency:<sha256 of scope and key>  hash: fingerprint, queue, id
-- ARGV[1] the request's fingerprint   ARGV[2] ttl ms
-- Returns {'new'} when the key was free (now taken, with its TTL), else
-- {'used', fingerprint, queue, id} (queue and id '' while its first request is being served).
-- One script, so a taken key never lacks its TTL whatever happens between the two writes.

if redis.call('HSETNX', KEYS[1], 'fingerprint', ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'new'}
end
local f = redis.call('HMGET', KEYS[1], 'fingerprint', 'queue', 'id')
return {'used', f[1] or '', f[2] or '', f[3] or ''}
