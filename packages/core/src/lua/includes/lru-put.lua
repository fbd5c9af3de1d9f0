--[[
  Fragment: write cache entries as the most recently used and keep the cache within maxSize entries
  and maxBytes bytes.

  An entry's size is lru_entry_bytes (includes/lru-open.lua): its value's bytes plus its key's.
  An entry larger than maxBytes by itself is not cached: its put removes any value the key had
  (the cache never answers with an older value than the last one put) and counts in c.tooLarge.

  Defines:
    lru_put(c, key, value) -> number
      c      handle from lru_open; c.maxSize (>= 1) bounds the entry count, c.maxBytes (>= 1) the
             byte total, c.ttlMs (0 = none) sets the entry's expiry to now + ttlMs. An entry
             written without a TTL loses any expiry it had.
      key    cache key
      value  serialised value (string)
      Returns how many least recently used entries were evicted. The entry just written has the
      highest score and fits maxBytes, so it is never the one evicted.
    lru_put_many(c, keys, values) -> number
      The same for lists of keys and values (same length): use it when a script writes many
      entries. The resulting cache, recency order and byte total are exactly the ones lru_put in a
      loop would leave (a key listed twice keeps its last value; an entry evicted by a later one
      of the same call stays evicted even when an overwrite shrinks the total again), but the
      values are written in one bulk HSET and ZADD at the end, and the oldest entries are popped
      one ZPOPMIN at a time only while a bound is exceeded. Returns how many entries were evicted.
    lru_evict(c) -> number
      Pops the least recently used entries (ZPOPMIN: O(log n) each, never a scan) while the cache
      holds more than c.maxSize entries or c.maxBytes bytes, and returns how many. lru_put calls it.
    lru_set_expiry(c, keys)
      Sets the expiry of just-written keys to now + c.ttlMs, or removes it when c.ttlMs is 0.
    lru_reset_if_empty(c)
      Deletes the byte total when no entry is left (c.size loaded): a total that had drifted
      from the entries' sum is reset rather than kept. lru_evict and lru_put_many call it.
  Callers writing several entries should first call lru_purge_expired (includes/lru-expire.lua) so
  that expired entries go before live ones.
]]
-- @include lru-open.lua
-- @include lru-remove.lua

local function lru_reset_if_empty(c)
  if c.size <= 0 and lru_bytes(c) ~= 0 then
    redis.call('DEL', c.bytesKey)
    c.bytes = 0
  end
end

local function lru_evict(c)
  if c.size == nil then
    c.size = redis.call('ZCARD', c.lru)
  end
  local keys, freed = {}, 0
  local function pop(count)
    local popped = redis.call('ZPOPMIN', c.lru, count)
    for i = 1, #popped, 2 do
      keys[#keys + 1] = popped[i]
      freed = freed + lru_entry_bytes(c, popped[i])
    end
    return #popped / 2
  end
  if c.size > c.maxSize then
    pop(c.size - c.maxSize)
  end
  while lru_bytes(c) - freed > c.maxBytes do
    if pop(1) == 0 then
      break
    end
  end
  if #keys == 0 then
    return 0
  end
  lru_bulk('HDEL', c.val, keys)
  if lru_has_exp(c) then
    lru_bulk('ZREM', c.exp, keys)
  end
  c.size = c.size - #keys
  lru_add_bytes(c, -freed)
  lru_reset_if_empty(c)
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
  local size = #key + #value
  if size > c.maxBytes then
    c.tooLarge = c.tooLarge + 1
    lru_remove(c, key)
    return 0
  end
  local old = lru_entry_bytes(c, key)
  local added = redis.call('ZADD', c.lru, lru_next_score(c), key)
  redis.call('HSET', c.val, key, value)
  lru_set_expiry(c, { key })
  if c.size ~= nil then
    c.size = c.size + added
  end
  lru_add_bytes(c, size - old)
  return lru_evict(c)
end

local function lru_put_many(c, keys, values)
  local n = #keys
  if n == 0 then
    return 0
  end
  local scores = {}
  for i = 1, n do
    scores[i] = lru_next_score(c)
  end
  if c.size == nil then
    c.size = redis.call('ZCARD', c.lru)
  end
  local before = lru_bytes(c)
  local total = before
  -- The keys this call writes: key -> { existed (held a value before the call), present (holds
  -- one now, in the simulation), size (its bytes when present), value, seq (index of its last put) }.
  local entries = {}
  -- Keys in put order with the index of that put: the oldest entries of this call come first.
  local order, head = {}, 1
  local olderGone = false -- every entry older than this call has been popped
  local evicted = 0

  -- Older entries are popped in chunks (one ZPOPMIN for as many as the rest of the call may need,
  -- not one per eviction); whatever was popped but not evicted is put back with its score at the
  -- end, and the evicted ones leave the value HASH and the expiry ZSET in one call each.
  local popped, pi = {}, 1
  local evictedKeys, evictedSet = {}, {}
  local function evict_oldest(i)
    -- Entries older than this call go first, lowest score first. A popped key this call wrote has
    -- a stale score: skip it, its new score is written at the end.
    while not olderGone do
      if popped[pi] == nil then
        local want = math.max(c.size - c.maxSize, 1) + (n - i)
        popped, pi = redis.call('ZPOPMIN', c.lru, want), 1
        if #popped == 0 then
          olderGone = true
        end
      else
        local key = popped[pi]
        pi = pi + 2
        if entries[key] == nil then
          total = total - lru_entry_bytes(c, key)
          evictedKeys[#evictedKeys + 1] = key
          evictedSet[key] = true
          return true
        end
      end
    end
    -- Then the entries of this call, the earliest put first.
    while order[head] ~= nil do
      local key, seq = order[head][1], order[head][2]
      head = head + 1
      local e = entries[key]
      if e.present and e.seq == seq then
        e.present = false
        total = total - e.size
        return true
      end
    end
    -- Nothing left (only when the stored total had drifted above the entries' sum).
    return false
  end

  -- What each key holds now, in one bulk read (a put follows a miss, so these are nearly always
  -- absent and the reply is small): its size is the value's byte length plus the key's, as
  -- lru_entry_bytes counts it.
  local stored = lru_bulk('HMGET', c.val, keys)
  for i = 1, n do
    local key, value = keys[i], values[i]
    local e = entries[key]
    if e == nil then
      -- A key evicted earlier in this call (as an older entry, before its own put) holds nothing.
      local old = not evictedSet[key] and stored[i]
      e = { existed = old ~= false, present = old ~= false, size = old and (#old + #key) or 0 }
      entries[key] = e
    end
    local size = #key + #value
    if size > c.maxBytes then
      c.tooLarge = c.tooLarge + 1
      if e.present then
        e.present = false
        total = total - e.size
        c.size = c.size - 1
      end
    else
      if e.present then
        total = total - e.size
      else
        c.size = c.size + 1
      end
      e.present, e.size, e.value, e.seq = true, size, value, i
      total = total + size
      order[#order + 1] = { key, i }
      while (c.size > c.maxSize or total > c.maxBytes) and evict_oldest(i) do
        c.size = c.size - 1
        evicted = evicted + 1
      end
    end
  end

  -- Write what the loop decided, each key once: live entries with the score of their last put,
  -- and entries that existed before but were refused or evicted since removed.
  local back = {}
  for k = pi, #popped, 2 do
    back[#back + 1] = popped[k + 1]
    back[#back + 1] = popped[k]
  end
  if #back > 0 then
    lru_bulk('ZADD', c.lru, back)
  end
  if #evictedKeys > 0 then
    lru_bulk('HDEL', c.val, evictedKeys)
    if lru_has_exp(c) then
      lru_bulk('ZREM', c.exp, evictedKeys)
    end
  end
  local scored, fields, live, gone, done = {}, {}, {}, {}, {}
  for i = 1, n do
    local key = keys[i]
    local e = entries[key]
    if not done[key] then
      done[key] = true
      if e.present then
        scored[#scored + 1] = scores[e.seq]
        scored[#scored + 1] = key
        fields[#fields + 1] = key
        fields[#fields + 1] = e.value
        live[#live + 1] = key
      elseif e.existed then
        gone[#gone + 1] = key
      end
    end
  end
  if #gone > 0 then
    lru_bulk('ZREM', c.lru, gone)
    lru_bulk('HDEL', c.val, gone)
    if lru_has_exp(c) then
      lru_bulk('ZREM', c.exp, gone)
    end
  end
  if #live > 0 then
    lru_bulk('ZADD', c.lru, scored)
    lru_bulk('HSET', c.val, fields)
    lru_set_expiry(c, live)
  end
  lru_add_bytes(c, total - before)
  lru_reset_if_empty(c)
  return evicted
end
