--[[
  Worker side of a finished batch, in one round trip: writes the computed outputs to the cache
  (evicting least recently used entries), pushes every item's outcome to the inbox of the client
  that asked, serves the waiters of each single-flight key, and clears the flights. Writing the
  cache and clearing the marker in one script means a request arriving just after sees either the
  flight (and waits) or the cached value, never neither.

  KEYS[1]          recency ZSET  <root>:cache:lru
  KEYS[2]          value HASH    <root>:cache:val
  KEYS[3]          expiry ZSET   <root>:cache:exp
  KEYS[3i+1]       inbox LIST    <root>:inbox:<client id> of item i      (i = 1..n)
  KEYS[3i+2]       marker STRING <root>:flight:<cache key of item i>      (any key when item i has no flight)
  KEYS[3i+3]       waiter LIST   <root>:flight:<cache key of item i>:w
  ARGV[1]          cache max size (entries)
  ARGV[2]          cache TTL in ms (0 = none)
  ARGV[3]          inbox TTL in ms
  ARGV[4]          inbox key prefix (<root>:inbox:), for waiters of other clients
  ARGV[5i+0]       request id of item i
  ARGV[5i+1]       cache key of item i ('' = do not cache)
  ARGV[5i+2]       '1' when item i owns a single-flight marker, else '0'
  ARGV[5i+3]       result payload (JSON) sent to the item's callers
  ARGV[5i+4]       output to cache ('' = nothing to cache, e.g. a failed item)

  Returns: {entries evicted, waiters served}
]]
-- @include lru-put.lua
-- @include lru-expire.lua
-- @include flight-settle.lua

local maxSize = tonumber(ARGV[1])
local c = lru_open(KEYS[1], KEYS[2], KEYS[3], maxSize, tonumber(ARGV[2]))
local inboxTtl = ARGV[3]
local inboxPrefix = ARGV[4]
local n = (#KEYS - 3) / 3

-- Cache writes first, in one bulk write, so every waiter served below could
-- equally have read the value from the cache.
local cacheKeys, cacheValues = {}, {}
for i = 1, n do
  local a = 5 * i
  if ARGV[a + 1] ~= '' and ARGV[a + 4] ~= '' then
    cacheKeys[#cacheKeys + 1] = ARGV[a + 1]
    cacheValues[#cacheValues + 1] = ARGV[a + 4]
  end
end
local evicted = 0
if #cacheKeys > 0 then
  if c.ttlMs > 0 then
    lru_purge_expired(c, 64)
  end
  evicted = lru_put_many(c, cacheKeys, cacheValues)
end

local touched = {}
local served = 0
for i = 1, n do
  local a = 5 * i
  local requestId, isFlight, payload = ARGV[a], ARGV[a + 2], ARGV[a + 3]
  flight_push(KEYS[3 * i + 1], requestId, payload, touched)
  if isFlight == '1' then
    served = served + flight_settle(KEYS[3 * i + 2], KEYS[3 * i + 3], requestId, payload, inboxPrefix, touched)
  end
end
flight_expire_inboxes(touched, inboxTtl)
return { evicted, served }
