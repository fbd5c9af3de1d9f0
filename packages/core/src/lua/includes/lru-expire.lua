--[[
  Fragment: TTL checks. An entry is expired when its expiry time (ms) is <= now (ms).
  Entries written without a TTL have no expiry entry and never expire.

  Defines:
    lru_is_expired(c, key) -> boolean
      c    handle from lru_open
      key  cache key
      True when key has an expiry time that has passed. Does not remove it.
    lru_purge_expired(c, limit) -> number
      Removes up to limit expired entries (and their bytes from the total, through lru_remove),
      oldest expiry first (ZRANGEBYSCORE on the expiry ZSET: O(log n + limit), never a scan).
      Returns how many were removed.
    lru_count_expired(c) -> number
      How many entries have expired but are still stored (ZCOUNT: O(log n)).
]]
-- @include lru-open.lua
-- @include lru-remove.lua

local function lru_is_expired(c, key)
  if not lru_has_exp(c) then
    return false
  end
  local expiresAt = redis.call('ZSCORE', c.exp, key)
  return expiresAt ~= false and tonumber(expiresAt) <= c.nowMs
end

local function lru_purge_expired(c, limit)
  if not lru_has_exp(c) then
    return 0
  end
  local expired = redis.call('ZRANGEBYSCORE', c.exp, '-inf', c.nowMs, 'LIMIT', 0, limit)
  for _, key in ipairs(expired) do
    lru_remove(c, key)
  end
  return #expired
end

local function lru_count_expired(c)
  if not lru_has_exp(c) then
    return 0
  end
  return redis.call('ZCOUNT', c.exp, '-inf', c.nowMs)
end
