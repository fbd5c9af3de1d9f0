--[[
  Fragment: cache reads by a caller that may not write the cache, and the recency of their hits.

  The client role (docs/acl/inferq-client.acl) may read the cache but not write it: a script runs
  every command under its caller's ACL, and EVALSHA needs write permission on every key it
  declares. So a client's claim reads the value HASH and the expiry ZSET without declaring them
  (they share the shard's hash tag, so Redis Cluster finds them in the script's slot), and records
  each hit in a hits ZSET it may write (cache key -> Redis TIME in us of the read) instead of
  touching the recency ZSET. A worker folds the hits into the recency ZSET before it evicts
  anything (settle-var.lua), so eviction stays least recently USED: an entry's recency is the
  later of its last write and its last hit.

  The hits ZSET is capped (a caller passes the cap): past it the oldest hits are dropped, so an
  entry whose only hit was dropped keeps the recency of its last write. Honest callers add at most
  one member per cache entry (a hot key is one member, its score renewed), so a cap of the cache's
  size loses nothing between two folds.

  Defines:
    lru_peek_many(valKey, expKey, nowMs, keys) -> array
      The stored value of each key, false for a miss; an entry whose expiry (ms) is <= nowMs is a
      miss and is NOT removed (a worker removes it). Reads only: HMGET, and ZMSCORE when the
      expiry ZSET exists (Redis >= 6.2).
    lru_record_hits(hitsKey, nowUs, keys, cap)
      Records keys (the hits) at time nowUs in the hits ZSET, then keeps only its cap newest
      members. Writes only hitsKey.
    lru_fold_hits(c, hitsKey) -> number
      Moves every recorded hit into the recency ZSET of handle c (lru_open), raising an entry's
      score to the hit's time and never lowering it (ZADD XX GT: an entry evicted since is not
      brought back), and empties the hits ZSET. Returns how many hits were read.
]]
-- @include lru-open.lua

local function lru_peek_many(valKey, expKey, nowMs, keys)
  if #keys == 0 then
    return {}
  end
  local values = redis.call('HMGET', valKey, unpack(keys))
  if redis.call('EXISTS', expKey) == 1 then
    local expiries = redis.call('ZMSCORE', expKey, unpack(keys))
    for i = 1, #keys do
      if values[i] and expiries[i] and tonumber(expiries[i]) <= nowMs then
        values[i] = false
      end
    end
  end
  return values
end

local function lru_record_hits(hitsKey, nowUs, keys, cap)
  if #keys == 0 then
    return
  end
  local scored = {}
  for i = 1, #keys do
    scored[2 * i - 1] = nowUs
    scored[2 * i] = keys[i]
  end
  redis.call('ZADD', hitsKey, unpack(scored))
  local n = redis.call('ZCARD', hitsKey)
  if n > cap then
    redis.call('ZREMRANGEBYRANK', hitsKey, 0, n - cap - 1)
  end
end

local function lru_fold_hits(c, hitsKey)
  local hits = redis.call('ZRANGE', hitsKey, 0, -1, 'WITHSCORES')
  if #hits == 0 then
    return 0
  end
  redis.call('DEL', hitsKey)
  local scored = {}
  for i = 1, #hits, 2 do
    scored[#scored + 1] = tonumber(hits[i + 1])
    scored[#scored + 1] = hits[i]
  end
  for i = 1, #scored, 1000 do
    redis.call('ZADD', c.lru, 'XX', 'GT', unpack(scored, i, math.min(i + 999, #scored)))
  end
  -- Scores handed out later in this script must stay above every folded one.
  c.nextScore = nil
  return #hits / 2
end
