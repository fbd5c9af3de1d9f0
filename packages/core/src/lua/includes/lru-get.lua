--[[
  Fragment: read cache entries and mark each hit most recently used.

  Defines:
    lru_get(c, key) -> string | false
      c    handle from lru_open
      key  cache key
      Returns the stored value and gives key the next recency score (lru_next_score), or false on a
      miss. An expired entry is a miss and is removed.
    lru_get_many(c, keys) -> array
      The same for a list of keys, in a fixed number of commands (HMGET, ZMSCORE when any entry has
      a TTL, one ZADD) instead of two or three per key: use it when a script reads many keys. Hits
      are touched in list order (a key listed twice ends with the later score). Returns an array of
      the same length, false for each miss. ZMSCORE needs Redis >= 6.2.
]]
-- @include lru-open.lua
-- @include lru-remove.lua
-- @include lru-expire.lua

local function lru_get(c, key)
  local value = redis.call('HGET', c.val, key)
  if value == false then
    return false
  end
  if lru_is_expired(c, key) then
    lru_remove(c, key)
    return false
  end
  redis.call('ZADD', c.lru, lru_next_score(c), key)
  return value
end

local function lru_get_many(c, keys)
  if #keys == 0 then
    return {}
  end
  local values = lru_bulk('HMGET', c.val, keys)
  if lru_has_exp(c) then
    local expiries = lru_bulk('ZMSCORE', c.exp, keys)
    for i = 1, #keys do
      if values[i] and expiries[i] and tonumber(expiries[i]) <= c.nowMs then
        lru_remove(c, keys[i])
        values[i] = false
      end
    end
  end
  local touched = {}
  for i = 1, #keys do
    if values[i] then
      touched[#touched + 1] = lru_next_score(c)
      touched[#touched + 1] = keys[i]
    end
  end
  if #touched > 0 then
    lru_bulk('ZADD', c.lru, touched)
  end
  return values
end
