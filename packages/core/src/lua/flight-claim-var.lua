--[[
  Client side of a tick of cached requests: for each request, read the cache (a hit marks the entry
  most recently used); on a miss, open a flight for its cache key and own it (the caller enqueues
  the request), or, when a flight is open, join it as a waiter: the flight's settle will push its
  outcome to our inbox. One round trip for the tick. Every argument is checked before the first
  write, so a bad argument leaves nothing half done.

  KEYS[1]          recency ZSET  <root>:cache:lru
  KEYS[2]          value HASH    <root>:cache:val
  KEYS[3]          expiry ZSET   <root>:cache:exp
  KEYS[4]          bytes STRING  <root>:cache:bytes (an expired entry read is removed, its bytes too)
  KEYS[4+i]        flight HASH   <root>:flight:<cache key of request i>   (i = 1..n)
  ARGV[1]          client id (a waiter's inbox is <root>:inbox:<client id>)
  ARGV[3i-1]       cache key of request i
  ARGV[3i]         request id of request i
  ARGV[3i+1]       deadline of request i: Redis time, epoch ms (clamped to now + FLIGHT_MAX_MS)

  Idempotent per request id: a call sent again after a lost reply (ioredis resends unanswered
  commands on reconnect) finds the flight it opened and answers {2} again, never joins it.

  Returns: an array of n replies in request order (codes: ClaimReply in protocol/claim.ts):
    {1, value}             cache hit (value as stored)
    {2}                    this request now owns the flight: the caller must enqueue it
    {3, flight id, owner}  joined the flight of request `flight id`, owned by client `owner`
]]
-- @include lru-get.lua
-- @include flight.lua

local n = #KEYS - 4
if n < 0 or #ARGV ~= 1 + 3 * n then
  return redis.error_reply('ERR flight-claim: expected 3 ARGV per request after the client id')
end
local client = ARGV[1]
local cacheKeys, deadlines = {}, {}
for i = 1, n do
  cacheKeys[i] = ARGV[3 * i - 1]
  local dl = tonumber(ARGV[3 * i + 1])
  if dl == nil or dl ~= dl or dl == math.huge or dl == -math.huge or ARGV[3 * i] == '' then
    return redis.error_reply('ERR flight-claim: request ' .. i .. ' has a bad request id or deadline')
  end
  deadlines[i] = math.floor(dl)
end

local c = lru_open(KEYS[1], KEYS[2], KEYS[3], KEYS[4], 0, 0, 0)
-- One bulk read (and recency touch) for the whole tick.
local values = lru_get_many(c, cacheKeys)
local out = {}
for i = 1, n do
  local requestId = ARGV[3 * i]
  local flightKey = KEYS[4 + i]
  local deadline = flight_deadline(c.nowMs, deadlines[i])
  if values[i] then
    out[i] = { 1, values[i] }
  else
    local f = redis.call('HMGET', flightKey, 'id', 'own', 'dl')
    if f[1] == requestId then
      -- Our own flight: this call is a resend of one whose reply was lost (a reconnect). Same answer.
      out[i] = { 2 }
    elseif not f[1] then
      -- No flight: open ours. A hash without an id but with other fields was not written by
      -- these scripts (they write id, own and dl together): clear it first.
      if f[2] or f[3] then
        redis.call('DEL', flightKey)
      end
      redis.call('HSET', flightKey, 'id', requestId, 'own', client, 'dl', deadline)
      flight_expire(flightKey, c.nowMs, deadline)
      out[i] = { 2 }
    else
      redis.call('HSET', flightKey, 'w:' .. client .. ' ' .. requestId, deadline)
      local dl = tonumber(f[3]) or 0
      if deadline > dl then
        redis.call('HSET', flightKey, 'dl', deadline)
        flight_expire(flightKey, c.nowMs, deadline)
      end
      out[i] = { 3, f[1], f[2] or '' }
    end
  end
end
return out
