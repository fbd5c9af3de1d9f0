--[[
  Writes cache entries, each becoming the most recently used in argument order, and evicts the
  least recently used entries so the cache never holds more than maxSize entries nor more than
  maxBytes bytes (atomic: concurrent writers on any number of connections cannot overshoot).
  An entry's size is the byte length of its value plus that of its key. An entry larger than
  maxBytes by itself is not stored (any older value of its key is removed); that is not an error.

  KEYS[1]  recency ZSET  <root>:cache:lru    (cache key -> Redis TIME in us)
  KEYS[2]  value HASH    <root>:cache:val    (cache key -> serialised value)
  KEYS[3]  expiry ZSET   <root>:cache:exp    (cache key -> expiry, ms)
  KEYS[4]  bytes STRING  <root>:cache:bytes  (sum of the stored entries' sizes)
  ARGV[1]  maxSize: most entries held, integer >= 1
  ARGV[2]  maxBytes: most bytes held, integer >= 1
  ARGV[3]  ttlMs: TTL of the written entries in ms, 0 = none
  ARGV[4], ARGV[5], ...  key, value pairs (a key listed twice keeps its last value)

  Returns: {evicted, tooLarge}: the number of live entries evicted to make room (expired entries
  removed first are not counted), and the number of entries not stored for being larger than
  maxBytes.
  Errors: a reply error when maxSize, maxBytes or ttlMs is out of range or a value is missing
  (caller bugs).
]]
-- @include lru-put.lua
-- @include lru-expire.lua

local maxSize = tonumber(ARGV[1])
if maxSize == nil or maxSize < 1 or maxSize ~= math.floor(maxSize) then
  return redis.error_reply('ERR inferq lru-put: maxSize must be an integer >= 1, got ' .. tostring(ARGV[1]))
end
local maxBytes = tonumber(ARGV[2])
if maxBytes == nil or maxBytes < 1 or maxBytes ~= math.floor(maxBytes) then
  return redis.error_reply('ERR inferq lru-put: maxBytes must be an integer >= 1, got ' .. tostring(ARGV[2]))
end
local ttlMs = tonumber(ARGV[3])
if ttlMs == nil or ttlMs < 0 then
  return redis.error_reply('ERR inferq lru-put: ttlMs must be a number >= 0, got ' .. tostring(ARGV[3]))
end
if (#ARGV - 3) % 2 ~= 0 then
  return redis.error_reply('ERR inferq lru-put: expected key/value pairs after ARGV[3]')
end

local c = lru_open(KEYS[1], KEYS[2], KEYS[3], KEYS[4], maxSize, maxBytes, ttlMs)
local keys, values = {}, {}
for i = 4, #ARGV, 2 do
  keys[#keys + 1] = ARGV[i]
  values[#values + 1] = ARGV[i + 1]
end
-- Expired entries go before live ones; bounded so a huge backlog is cleared over several calls.
lru_purge_expired(c, #keys + 16)
local evicted = lru_put_many(c, keys, values)
return { evicted, c.tooLarge }
