--[[
  Fragment: remove one cache entry from all three structures, and its bytes from the total.

  Defines:
    lru_remove(c, key) -> 1 | 0
      c    handle from lru_open (includes/lru-open.lua)
      key  cache key
      Removes key from the recency ZSET, the value HASH and the expiry ZSET, and subtracts its
      lru_entry_bytes from the byte total.
      Returns 1 when the key was in the cache (expired or not), else 0.
]]
-- @include lru-open.lua

local function lru_remove(c, key)
  local bytes = lru_entry_bytes(c, key)
  local removed = redis.call('ZREM', c.lru, key)
  redis.call('HDEL', c.val, key)
  if lru_has_exp(c) then
    redis.call('ZREM', c.exp, key)
  end
  if c.size ~= nil then
    c.size = c.size - removed
  end
  lru_add_bytes(c, -bytes)
  return removed
end
