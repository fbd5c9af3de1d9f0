--[[
  Reads cache entries and marks each hit most recently used, in argument order.

  KEYS[1]  recency ZSET  <root>:cache:lru  (cache key -> Redis TIME in us)
  KEYS[2]  value HASH    <root>:cache:val  (cache key -> serialised value)
  KEYS[3]  expiry ZSET   <root>:cache:exp  (cache key -> expiry, ms)
  KEYS[4]  bytes STRING  <root>:cache:bytes  (byte total: expired entries removed are subtracted)
  ARGV[1..n]  cache keys to read (a key listed twice is touched twice)

  Returns: an array of n values in ARGV order; a miss is nil. An expired entry is a miss and is
  removed.
]]
-- @include lru-get.lua

local c = lru_open(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 0, 0, 0)
return lru_get_many(c, ARGV)
