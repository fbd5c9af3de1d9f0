--[[
  Worker side of a finished batch, in one round trip: writes the computed outputs to the cache
  (evicting least recently used entries), sends every item's outcome to the inbox of the client
  that asked, serves the waiters of each single-flight key, and clears the flights. Writing the
  cache and clearing the marker in one script means a request arriving just after sees either the
  flight (and waits) or the cached value, never neither.

  KEYS[1]              recency ZSET  <root>:cache:lru
  KEYS[2]              value HASH    <root>:cache:val
  KEYS[3]              expiry ZSET   <root>:cache:exp
  KEYS[3+j]            inbox LIST    <root>:inbox:<client id>, j = 1..m (each client once)
  KEYS[3+m+2f-1]       marker STRING <root>:flight:<cache key>, f = 1..(flights)
  KEYS[3+m+2f]         waiter LIST   <root>:flight:<cache key>:w
  ARGV[1]              cache max size (entries)
  ARGV[2]              cache TTL in ms (0 = none)
  ARGV[3]              inbox TTL in ms
  ARGV[4]              inbox key prefix (<root>:inbox:), for waiters of other clients
  ARGV[5]              m, the number of inbox keys
  ARGV[6+5(i-1)+0]     item i: index j of its client's inbox key
  ARGV[6+5(i-1)+1]     item i: request id
  ARGV[6+5(i-1)+2]     item i: flight index f, or 0 when the item owns no single-flight marker
  ARGV[6+5(i-1)+3]     item i: result payload (JSON) for its callers
  ARGV[6+5(i-1)+4]     item i: cache key and output to cache, as "<cache key> <output JSON>", or ''

  Returns: {entries evicted, waiters served}
]]
-- @include lru-put.lua
-- @include lru-expire.lua
-- @include flight-settle.lua

local c = lru_open(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]))
local inboxTtl = ARGV[3]
local inboxPrefix = ARGV[4]
local m = tonumber(ARGV[5])
local n = (#ARGV - 5) / 5

-- Cache writes first, in one bulk write, so every waiter served below could
-- equally have read the value from the cache.
local cacheKeys, cacheValues = {}, {}
for i = 1, n do
  local entry = ARGV[6 + 5 * (i - 1) + 4]
  if entry ~= '' then
    local sep = string.find(entry, ' ', 1, true)
    cacheKeys[#cacheKeys + 1] = string.sub(entry, 1, sep - 1)
    cacheValues[#cacheValues + 1] = string.sub(entry, sep + 1)
  end
end
local evicted = 0
if #cacheKeys > 0 then
  if c.ttlMs > 0 then
    lru_purge_expired(c, 64)
  end
  evicted = lru_put_many(c, cacheKeys, cacheValues)
end

local outbox = flight_out()
local served = 0
for i = 1, n do
  local a = 6 + 5 * (i - 1)
  local inboxKey = KEYS[3 + tonumber(ARGV[a])]
  local requestId, f, payload = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  flight_add(outbox, inboxKey, requestId, payload)
  if f > 0 then
    served = served + flight_settle(outbox, KEYS[3 + m + 2 * f - 1], KEYS[3 + m + 2 * f], requestId, payload, inboxPrefix)
  end
end
flight_flush(outbox, inboxTtl)
return { evicted, served }
