-- reservation_release.lua: end an agent's reservation, only for the daemon that holds it.
-- Standalone: common.lua is not prepended (the key is an agent's, not a queue's).
-- KEYS[1] <prefix>:agent:<id>:reservation   string: the holder
-- ARGV[1] holder
-- Returns 1 when released, 0 when the agent is not reserved or is reserved by someone else.
-- A daemon whose reservation expired and was taken over must not free the new holder's agent.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
