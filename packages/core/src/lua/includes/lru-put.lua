--[[
  Fragment: write cache entries as the most recently used and keep the cache within maxSize.

  Defines:
    lru_put(c, key, value) -> number
      c      handle from lru_open; c.maxSize (>= 1) bounds the entry count, c.ttlMs (0 = none) sets
             the entry's expiry to now + ttlMs. An entry written without a TTL loses any expiry it had.
      key    cache key
      value  serialised value (string)
      Returns how many least recently used entries were evicted. The entry just written has the
      highest score, so it is never the one evicted.
    lru_put_many(c, keys, values) -> number
      The same for lists of keys and values (same length), in a fixed number of commands instead of
      four or more per entry: use it when a script writes many entries. Entries take increasing
      scores in list order (a key listed twice keeps its last value). Evicts once at the end; the
      resulting cache is the one lru_put in a loop would leave. Returns how many entries were evicted.
    lru_evict(c) -> number
      Pops the least recently used entries above c.maxSize (ZPOPMIN: O(log n) each, never a scan)
      and returns how many. lru_put and lru_put_many call it.
    lru_set_expiry(c, keys)
      Sets the expiry of just-written keys to now + c.ttlMs, or removes it when c.ttlMs is 0.
  Callers writing several entries should first call lru_purge_expired (includes/lru-expire.lua) so
  that expired entries go before live ones.
]]
-- @include lru-open.lua

local function lru_evict(c)
  if c.size == nil then
    c.size = redis.call('ZCARD', c.lru)
  end
  if c.size <= c.maxSize then
    return 0
  end
  local popped = redis.call('ZPOPMIN', c.lru, c.size - c.maxSize)
  local keys = {}
  for i = 1, #popped, 2 do
    keys[#keys + 1] = popped[i]
  end
  lru_bulk('HDEL', c.val, keys)
  if lru_has_exp(c) then
    lru_bulk('ZREM', c.exp, keys)
  end
  c.size = c.size - #keys
  return #keys
end

local function lru_set_expiry(c, keys)
  if c.ttlMs > 0 then
    local expiresAt = c.nowMs + c.ttlMs
    local scored = {}
    for i = 1, #keys do
      scored[2 * i - 1] = expiresAt
      scored[2 * i] = keys[i]
    end
    lru_bulk('ZADD', c.exp, scored)
    c.hasExp = true
  elseif lru_has_exp(c) then
    lru_bulk('ZREM', c.exp, keys)
  end
end

local function lru_put(c, key, value)
  local added = redis.call('ZADD', c.lru, lru_next_score(c), key)
  redis.call('HSET', c.val, key, value)
  lru_set_expiry(c, { key })
  if c.size ~= nil then
    c.size = c.size + added
  end
  return lru_evict(c)
end

local function lru_put_many(c, keys, values)
  local n = #keys
  if n == 0 then
    return 0
  end
  local scored, fields = {}, {}
  for i = 1, n do
    scored[2 * i - 1] = lru_next_score(c)
    scored[2 * i] = keys[i]
    fields[2 * i - 1] = keys[i]
    fields[2 * i] = values[i]
  end
  local added = lru_bulk('ZADD', c.lru, scored)
  lru_bulk('HSET', c.val, fields)
  lru_set_expiry(c, keys)
  if c.size ~= nil then
    c.size = c.size + added
  end
  return lru_evict(c)
end
