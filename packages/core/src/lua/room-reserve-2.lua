--[[
  Admission to a model's queue under maxQueueLength, as a ledger: one member per request admitted
  and not yet answered, so a request is counted at most once (a resend, a retried call, a re-run
  of its job reserve nothing twice) and given back at most once (ZREM). The count is ZCARD: never
  computed by a caller.

  Each client that holds reservations holds a lease (renewed by every call of this script it makes,
  and by its tick): when a client dies between reserving and enqueuing, its lease expires and the
  next call of this script by anyone (a client's admission, a worker's periodic reclaim) drops
  every reservation of that client. Request ids are "<client id>.<seq>", so one ZREMRANGEBYLEX
  finds them all.

  KEYS[1]  room ZSET    <model root>:room         request id -> 0 (members ordered by id)
  KEYS[2]  leases ZSET  <model root>:room:leases  client id -> lease expiry (Redis time, epoch ms)
  ARGV[1]  client id ('' = none: only reclaim, no lease renewed)
  ARGV[2]  maxQueueLength (>= 1)
  ARGV[3]  lease TTL in ms (>= 1)
  ARGV[4+] request ids to admit, in order (may be none: the lease is only renewed)

  Returns: {length before, reservations reclaimed from dead clients, admitted...}: one 0/1 per
  request id, in order. A request already in the ledger is admitted again (it holds its place);
  a new one is admitted while the ledger holds fewer than maxQueueLength.
]]

local client = ARGV[1]
local max, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
if max == nil or ttl == nil or max < 1 or ttl < 1 then
  return redis.error_reply('ERR room-reserve: maxQueueLength and lease TTL must be >= 1')
end
for i = 4, #ARGV do
  if ARGV[i] == '' then
    return redis.error_reply('ERR room-reserve: empty request id')
  end
end

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Dead clients' reservations go first (a bounded number per call: a few dead clients per second
-- at most is the realistic rate; the rest go on the next call).
local reclaimed = 0
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', nowMs, 'LIMIT', 0, 16)
for _, c in ipairs(dead) do
  if c ~= client then
    reclaimed = reclaimed + redis.call('ZREMRANGEBYLEX', KEYS[1], '[' .. c .. '.', '(' .. c .. '/')
  end
  redis.call('ZREM', KEYS[2], c)
end

if client ~= '' then
  redis.call('ZADD', KEYS[2], nowMs + ttl, client)
end

local length = redis.call('ZCARD', KEYS[1])
local out = { length, reclaimed }
local count = length
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], id) then
    out[#out + 1] = 1
  elseif count < max then
    redis.call('ZADD', KEYS[1], 0, id)
    count = count + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
