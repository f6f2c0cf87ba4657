-- reservation_renew.lua: extend an agent's reservation, only for the daemon that holds it.
-- Standalone: common.lua is not prepended (the key is an agent's, not a queue's).
-- KEYS[1] <prefix>:agent:<id>:reservation   string: the holder
-- ARGV[1] holder   ARGV[2] lease ms
-- Returns 1 when renewed, 0 when the agent is not reserved or is reserved by someone else.
-- GET and PEXPIRE in one script: renewing by a check then a separate write could extend a
-- reservation that expired and was taken by another daemon in between.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
