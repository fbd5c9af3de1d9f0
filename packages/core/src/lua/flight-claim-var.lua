--[[
  Client side of a tick of cached requests: for each request, read the cache (a hit is recorded in
  the hits ZSET, which a worker folds into the recency order before it evicts: includes/lru-hits.lua);
  on a miss, open a flight for its cache key and own it (the caller enqueues the request), or, when
  a flight is open, join it as a waiter: the flight's settle will push its outcome to our inbox.
  One round trip for the tick. Every argument is checked before the first write, so a bad argument
  leaves nothing half done.

  Runs under the client role (docs/acl/inferq-client.acl), which may read the cache but not write
  it: the value HASH and the expiry ZSET are read without being declared in KEYS (EVALSHA needs
  write permission on every declared key; both share the shard's hash tag, so on Redis Cluster
  they are in the script's slot), and an expired entry is a miss left for a worker to remove.

  KEYS[1]          hits ZSET     <root>:cache:hits (cache key -> time of its last hit, us)
  KEYS[1+i]        flight HASH   <root>:flight:<cache key of request i>   (i = 1..n)
  ARGV[1]          client id (a waiter's inbox is <root>:inbox:<client id>)
  ARGV[2]          value HASH    <root>:cache:val, read only (not declared: see above)
  ARGV[3]          expiry ZSET   <root>:cache:exp, read only (not declared)
  ARGV[4]          most members the hits ZSET keeps (>= 1; the oldest hits go first)
  ARGV[3i+2]       cache key of request i
  ARGV[3i+3]       request id of request i
  ARGV[3i+4]       deadline of request i: Redis time, epoch ms (clamped to now + FLIGHT_MAX_MS)

  Idempotent per request id: a call sent again after a lost reply (ioredis resends unanswered
  commands on reconnect) finds the flight it opened and answers {2} again, never joins it.

  Returns: an array of n replies in request order (codes: ClaimReply in protocol/claim.ts):
    {1, value}             cache hit (value as stored)
    {2}                    this request now owns the flight: the caller must enqueue it
    {3, flight id, owner}  joined the flight of request `flight id`, owned by client `owner`
]]
-- @include lru-hits.lua
-- @include flight.lua

local n = #KEYS - 1
local cap = tonumber(ARGV[4])
if n < 0 or #ARGV ~= 4 + 3 * n or cap == nil or cap < 1 then
  return redis.error_reply('ERR flight-claim: expected the client id, the cache keys, the hits cap and 3 ARGV per request')
end
local client = ARGV[1]
local cacheKeys, deadlines = {}, {}
for i = 1, n do
  cacheKeys[i] = ARGV[3 * i + 2]
  local dl = tonumber(ARGV[3 * i + 4])
  if dl == nil or dl ~= dl or dl == math.huge or dl == -math.huge or ARGV[3 * i + 3] == '' then
    return redis.error_reply('ERR flight-claim: request ' .. i .. ' has a bad request id or deadline')
  end
  deadlines[i] = math.floor(dl)
end

local t = redis.call('TIME')
local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
local c = { nowMs = math.floor(nowUs / 1000) }
-- One bulk read for the whole tick; its hits are recorded for the workers' recency order.
local values = lru_peek_many(ARGV[2], ARGV[3], c.nowMs, cacheKeys)
local hits = {}
for i = 1, n do
  if values[i] then
    hits[#hits + 1] = cacheKeys[i]
  end
end
lru_record_hits(KEYS[1], nowUs, hits, cap)
local out = {}
for i = 1, n do
  local requestId = ARGV[3 * i + 3]
  local flightKey = KEYS[1 + i]
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
