--[[
  Whether a cache key holds a live entry. Read only: recency is not changed and an expired entry
  is not removed.

  KEYS[1]  recency ZSET  <root>:cache:lru
  KEYS[2]  value HASH    <root>:cache:val
  KEYS[3]  expiry ZSET   <root>:cache:exp
  KEYS[4]  bytes STRING  <root>:cache:bytes
  ARGV[1]  cache key

  Returns: 1 when held and not expired, else 0.
]]
-- @include lru-expire.lua

local c = lru_open(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 0, 0, 0)
if redis.call('HEXISTS', c.val, ARGV[1]) == 0 or lru_is_expired(c, ARGV[1]) then
  return 0
end
return 1
