--[[
  Worker side, before a batch runs: for each cached item, read the cache (another worker may have
  computed it since the client looked; a hit marks the entry most recently used) and, on a miss,
  the latest deadline of everyone waiting on the flight the item owns: a caller who joined with a
  later deadline keeps the item alive after the owner's own deadline passed. Also returns Redis
  time, so that deadlines are compared on one clock, not the worker's.

  KEYS[1]          recency ZSET  <root>:cache:lru
  KEYS[2]          value HASH    <root>:cache:val
  KEYS[3]          expiry ZSET   <root>:cache:exp
  KEYS[4]          bytes STRING  <root>:cache:bytes (an expired entry read is removed, its bytes too)
  KEYS[4+i]        flight HASH   <root>:flight:<cache key of item i>   (i = 1..n)
  ARGV[2i-1]       cache key of item i
  ARGV[2i]         request id of item i (the flight's id when the item still owns it)

  Returns: {now (Redis time, epoch ms), reply 1, ..., reply n}, where reply i is
    {1, value}       cache hit (value as stored)
    {0, deadline}    miss; deadline = the flight's latest deadline (epoch ms), or 0 when the item
                     no longer owns a flight
]]
-- @include lru-get.lua

local n = #KEYS - 4
if n < 0 or #ARGV ~= 2 * n then
  return redis.error_reply('ERR batch-open: expected 2 ARGV per item')
end
local cacheKeys = {}
for i = 1, n do
  cacheKeys[i] = ARGV[2 * i - 1]
end
local c = lru_open(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 0, 0, 0)
local values = lru_get_many(c, cacheKeys)
local out = { c.nowMs }
for i = 1, n do
  if values[i] then
    out[i + 1] = { 1, values[i] }
  else
    local f = redis.call('HMGET', KEYS[4 + i], 'id', 'dl')
    if f[1] == ARGV[2 * i] then
      out[i + 1] = { 0, tonumber(f[2]) or 0 }
    else
      out[i + 1] = { 0, 0 }
    end
  end
end
return out
