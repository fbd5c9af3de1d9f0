--[[
  Writes cache entries, each becoming the most recently used in argument order, and evicts the
  least recently used entries so the cache never holds more than maxSize (atomic: concurrent
  writers on any number of connections cannot overshoot).

  KEYS[1]  recency ZSET  <root>:cache:lru  (cache key -> Redis TIME in us)
  KEYS[2]  value HASH    <root>:cache:val  (cache key -> serialised value)
  KEYS[3]  expiry ZSET   <root>:cache:exp  (cache key -> expiry, ms)
  ARGV[1]  maxSize: most entries held, integer >= 1
  ARGV[2]  ttlMs: TTL of the written entries in ms, 0 = none
  ARGV[3], ARGV[4], ...  key, value pairs (a key listed twice keeps its last value)

  Returns: the number of live entries evicted to make room (expired entries removed first are
  not counted).
  Errors: a reply error when maxSize or ttlMs is out of range or a value is missing (caller bugs).
]]
-- @include lru-put.lua
-- @include lru-expire.lua

local maxSize = tonumber(ARGV[1])
if maxSize == nil or maxSize < 1 or maxSize ~= math.floor(maxSize) then
  return redis.error_reply('ERR inferq lru-put: maxSize must be an integer >= 1, got ' .. tostring(ARGV[1]))
end
local ttlMs = tonumber(ARGV[2])
if ttlMs == nil or ttlMs < 0 then
  return redis.error_reply('ERR inferq lru-put: ttlMs must be a number >= 0, got ' .. tostring(ARGV[2]))
end
if (#ARGV - 2) % 2 ~= 0 then
  return redis.error_reply('ERR inferq lru-put: expected key/value pairs after ARGV[2]')
end

local c = lru_open(KEYS[1], KEYS[2], KEYS[3], maxSize, ttlMs)
local keys, values = {}, {}
for i = 3, #ARGV, 2 do
  keys[#keys + 1] = ARGV[i]
  values[#values + 1] = ARGV[i + 1]
end
-- Expired entries go before live ones; bounded so a huge backlog is cleared over several calls.
lru_purge_expired(c, #keys + 16)
return lru_put_many(c, keys, values)
