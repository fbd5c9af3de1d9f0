--[[
  Fragment: the handle every lru_* function works on.

  Defines:
    lru_open(lruKey, valKey, expKey, bytesKey, maxSize, maxBytes, ttlMs) -> handle
      lruKey   ZSET    cache key -> recency score (Redis TIME in microseconds)
      valKey   HASH    cache key -> serialised value
      expKey   ZSET    cache key -> expiry time (ms since epoch, Redis TIME); only entries written with a TTL
      bytesKey STRING  the cache's size in bytes: the sum of lru_entry_bytes over the value HASH
      maxSize  most entries held (integer >= 1); only lru_put reads it, pass 0 when the script never puts
      maxBytes most bytes held (integer >= 1); only lru_put reads it, pass 0 when the script never puts
      ttlMs    TTL of entries this script writes, in ms; 0 = no TTL
      Returns a table { lru, val, exp, bytesKey, maxSize, maxBytes, ttlMs, nowUs, nowMs, tooLarge, ... }.
      Reads Redis TIME once, so every entry touched by one script sees the same "now". tooLarge
      counts the entries lru_put refused because they alone exceed maxBytes.
      The handle also caches, for the length of the script, the entry count, the byte total and
      whether the expiry ZSET exists (saving a command per entry). A script must therefore change
      the four keys only through the lru_* functions once it has opened a handle.
    lru_next_score(c) -> number
      The recency score for the next entry touched through handle c: max(now in us, highest score + 1)
      for the first call, then +1 per call. Strict order even when many entries are touched in the
      same microsecond, by one script or by several connections.
    lru_has_exp(c) -> boolean
      Whether any entry has an expiry (the expiry ZSET exists). Without one, TTL checks cost nothing.
    lru_bulk(command, key, args) -> reply
      redis.call(command, key, unpack(args)), split into calls of at most 1000 arguments (Lua's
      unpack has a stack limit). Array replies are concatenated, integer replies summed. args must
      not be empty, and for commands taking pairs its chunks keep pairs whole (1000 is even).
    lru_entry_bytes(c, key) -> number, boolean
      The bytes one stored entry counts for: the value's length (HSTRLEN: bytes, so UTF-8 bytes of
      the JSON) plus the key's length, and whether key has a value at all (0, false when it has
      none). Call it before removing the value.
    lru_bytes(c) -> number
      The byte total (GET of bytesKey, 0 when absent), read once per script.
    lru_add_bytes(c, delta)
      Adds delta to the byte total (INCRBY). A total that reaches 0 or less deletes the key: an
      empty cache leaves no key behind, and a total that drifted (entries written by a release that
      did not count them) never goes negative.
  Scores are passed to redis.call as Lua numbers, not strings: Redis formats number arguments
  with 17 significant digits, exact for integers below 2^53 (microsecond times are ~1.8e15),
  while Lua's own tostring keeps only 14 and would round them.
]]

local function lru_open(lruKey, valKey, expKey, bytesKey, maxSize, maxBytes, ttlMs)
  local t = redis.call('TIME')
  local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return {
    lru = lruKey,
    val = valKey,
    exp = expKey,
    bytesKey = bytesKey,
    maxSize = tonumber(maxSize),
    maxBytes = tonumber(maxBytes),
    ttlMs = tonumber(ttlMs),
    tooLarge = 0,
    nowUs = nowUs,
    nowMs = math.floor(nowUs / 1000),
    -- Loaded on first use:
    nextScore = nil, -- next recency score to hand out
    size = nil, -- entry count (ZCARD of lru), kept up to date by lru_put and lru_remove
    bytes = nil, -- byte total (GET of bytesKey), kept up to date by lru_add_bytes
    hasExp = nil, -- whether the expiry ZSET exists
  }
end

local function lru_next_score(c)
  if c.nextScore == nil then
    -- Highest score is the last ZSET element: O(log n), never a scan.
    local top = redis.call('ZRANGE', c.lru, -1, -1, 'WITHSCORES')
    local score = c.nowUs
    if top[2] ~= nil and tonumber(top[2]) >= score then
      score = tonumber(top[2]) + 1
    end
    c.nextScore = score
  end
  local score = c.nextScore
  c.nextScore = score + 1
  return score
end

local function lru_has_exp(c)
  if c.hasExp == nil then
    c.hasExp = redis.call('EXISTS', c.exp) == 1
  end
  return c.hasExp
end

local LRU_BULK_CHUNK = 1000

local function lru_bulk(command, key, args)
  local n = #args
  if n <= LRU_BULK_CHUNK then
    return redis.call(command, key, unpack(args))
  end
  local list, sum = nil, 0
  for i = 1, n, LRU_BULK_CHUNK do
    local reply = redis.call(command, key, unpack(args, i, math.min(i + LRU_BULK_CHUNK - 1, n)))
    if type(reply) == 'table' then
      list = list or {}
      for j = 1, #reply do
        list[#list + 1] = reply[j]
      end
    else
      sum = sum + reply
    end
  end
  return list or sum
end

local function lru_entry_bytes(c, key)
  local n = redis.call('HSTRLEN', c.val, key)
  if n == 0 and redis.call('HEXISTS', c.val, key) == 0 then
    return 0, false
  end
  return n + #key, true
end

local function lru_bytes(c)
  if c.bytes == nil then
    c.bytes = tonumber(redis.call('GET', c.bytesKey)) or 0
  end
  return c.bytes
end

local function lru_add_bytes(c, delta)
  if delta == 0 then
    return
  end
  local total = redis.call('INCRBY', c.bytesKey, delta)
  if total <= 0 then
    redis.call('DEL', c.bytesKey)
    total = 0
  end
  c.bytes = total
end
