--[[
  Client side of a tick of cached requests: for each request, read the cache (a hit marks the entry
  most recently used); on a miss, claim the single-flight marker of its cache key, or, when another
  request (from any process) holds it, join that flight as a waiter. One round trip for the tick.

  KEYS[1]          recency ZSET  <root>:cache:lru
  KEYS[2]          value HASH    <root>:cache:val
  KEYS[3]          expiry ZSET   <root>:cache:exp
  KEYS[2+2i]       marker STRING <root>:flight:<cache key of request i>   (i = 1..n)
  KEYS[3+2i]       waiter LIST   <root>:flight:<cache key of request i>:w
  ARGV[1]          client id (the waiter's inbox is <root>:inbox:<client id>)
  ARGV[3i-1]       cache key of request i
  ARGV[3i]         request id of request i
  ARGV[3i+1]       ms the request still waits: the marker's TTL, so a flight whose job is lost
                   (removed, or its client died before enqueueing) stops blocking later requests

  Returns: an array of n replies in request order:
    {1, value}  cache hit (value as stored)
    2           this request now owns the flight: the caller must enqueue it
    3           joined a flight in progress: the owner's result will be pushed to our inbox
]]
-- @include lru-get.lua

local c = lru_open(KEYS[1], KEYS[2], KEYS[3], 0, 0)
local client = ARGV[1]
local n = (#KEYS - 3) / 2
local cacheKeys = {}
for i = 1, n do
  cacheKeys[i] = ARGV[3 * i - 1]
end
-- One bulk read (and recency touch) for the whole tick.
local values = lru_get_many(c, cacheKeys)
local out = {}
for i = 1, n do
  local requestId = ARGV[3 * i]
  local ttlMs = ARGV[3 * i + 1]
  local markerKey = KEYS[2 + 2 * i]
  local waitersKey = KEYS[3 + 2 * i]
  if values[i] then
    out[i] = { 1, values[i] }
  elseif redis.call('SET', markerKey, requestId, 'NX', 'PX', ttlMs) then
    out[i] = 2
  else
    redis.call('RPUSH', waitersKey, client .. '|' .. requestId)
    -- The waiter list lives exactly as long as the flight it waits for.
    local left = redis.call('PTTL', markerKey)
    if left > 0 then
      redis.call('PEXPIRE', waitersKey, left)
    end
    out[i] = 3
  end
end
return out
