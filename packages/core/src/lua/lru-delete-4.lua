--[[
  Removes one cache entry (and its bytes from the byte total).

  KEYS[1]  recency ZSET  <root>:cache:lru
  KEYS[2]  value HASH    <root>:cache:val
  KEYS[3]  expiry ZSET   <root>:cache:exp
  KEYS[4]  bytes STRING  <root>:cache:bytes
  ARGV[1]  cache key

  Returns: 1 when a live entry was removed; 0 when the key was absent or had expired (an expired
  entry is removed all the same).
]]
-- @include lru-remove.lua
-- @include lru-expire.lua

local c = lru_open(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 0, 0, 0)
local expired = lru_is_expired(c, ARGV[1])
local removed = lru_remove(c, ARGV[1])
if expired then
  return 0
end
return removed
