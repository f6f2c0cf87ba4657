-- quarantine.lua: move one job aside that a script could read but Go cannot decode (a field
-- holding garbage), so the queue goes on.
-- KEYS[1] as in common.lua   KEYS[2] <prefix>:{Q}:quarantine (dead letters: id -> reason)
-- ARGV[1..3] as in common.lua
-- ARGV[4] job id   ARGV[5] reason
-- Returns {'ok'}.

local quarantined = {}
quarantine(KEYS[2], quarantined, ARGV[4], ARGV[5])
return {'ok'}
