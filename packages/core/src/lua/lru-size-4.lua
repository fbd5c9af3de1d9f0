--[[
  The number of live entries. Read only: expired entries not yet removed are subtracted, not
  deleted. O(log n).

  KEYS[1]  recency ZSET  <root>:cache:lru
  KEYS[2]  value HASH    <root>:cache:val
  KEYS[3]  expiry ZSET   <root>:cache:exp
  KEYS[4]  bytes STRING  <root>:cache:bytes
  ARGV     none

  Returns: ZCARD of the recency ZSET minus the entries whose expiry has passed.
]]
-- @include lru-expire.lua

local c = lru_open(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 0, 0, 0)
return redis.call('ZCARD', c.lru) - lru_count_expired(c)
