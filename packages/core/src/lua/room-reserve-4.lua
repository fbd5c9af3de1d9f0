--[[
  Admission to a model's queue, as a ledger with fair shares between tenants: one member per
  request admitted and not yet answered, so a request is counted at most once (a resend, a retried
  call, a re-run of its job reserve nothing twice) and given back at most once (ZREM). The length
  is ZCARD and each tenant's count a field of one hash, both written only by these scripts.

  The bound is the operator's: `maxQueueLength` in the model's limits hash (set by the workers);
  a client may only lower it for itself (ARGV[2]). When the queue is contended, each tenant with
  requests waiting is owed a share of the bound in proportion to its weight (max-min fair):
    - a request of a tenant under its share is admitted, even when the queue is at the bound
      (it is owed that room; the queue may then hold up to the bound plus the shares owed to
      tenants that were idle when it filled, never more than twice the bound);
    - otherwise it is admitted while the queue is below the bound (room a tenant does not use is
      lent to the others: the queue stays work-conserving), and refused at the bound;
    - a tenant at its cap (`maxQueued` in the tenants hash) is refused even when room is free.

  Each client that holds places holds a lease, renewed by every call of this script it makes (and
  by its tick): when a client dies between reserving and enqueuing, its lease expires and the
  next call by anyone (a client's admission, a worker's periodic reclaim) drops every place of
  that client (request ids are "<client id>.<seq>": one ZREMRANGEBYLEX finds them) and takes
  them off its tenant's count.

  KEYS[1]  room ZSET           <model root>:room             request id -> 0
  KEYS[2]  leases ZSET         <model root>:room:leases      client id -> lease expiry (Redis time, ms)
  KEYS[3]  counts HASH         <model root>:room:counts      tenant -> places held
  KEYS[4]  lease tenants HASH  <model root>:room:clients     client id -> its tenant
  ARGV[1]  client id ('' = none: only reclaim)
  ARGV[2]  the client's own bound (0 = none: the operator's alone)
  ARGV[3]  lease TTL in ms (>= 1)
  ARGV[4]  tenant of the client
  ARGV[5]  name of the limits HASH   <model root>:limits   maxQueueLength (the operator's bound)
  ARGV[6]  name of the tenants HASH  <model root>:tenants  "<tenant>|weight", "<tenant>|maxQueued"
  ARGV[7+] request ids to admit, in order (may be none: the lease is only renewed)
  The two operator hashes are read, never written, and passed by name rather than declared in
  KEYS: Redis checks a script's declared keys against the caller's ACL for writing, and a client
  may only read the operator's settings (docs/acl). They share the ledger's hash tag (one slot).

  Returns: {length before, places reclaimed from dead clients, bound (0 = none), tenant's count
  before, tenant's share (rounded down; 0 = no bound), tenant's cap (0 = none), tenant's weight
  (a string), decision...}:
  one per request id, in order: 1 admitted (or already held), 0 refused at the bound,
  2 refused at the tenant's cap.
]]

local client, tenant = ARGV[1], ARGV[4]
local own, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
if own == nil or ttl == nil or own < 0 or ttl < 1 or tenant == '' then
  return redis.error_reply('ERR room-reserve: bad bound, lease TTL or tenant')
end
local limitsKey, tenantsKey = ARGV[5], ARGV[6]
for i = 7, #ARGV do
  if ARGV[i] == '' then
    return redis.error_reply('ERR room-reserve: empty request id')
  end
end

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Dead clients' places go first (a bounded number of clients per call; the rest go next call).
local reclaimed = 0
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', nowMs, 'LIMIT', 0, 16)
for _, c in ipairs(dead) do
  if c ~= client then
    local n = redis.call('ZREMRANGEBYLEX', KEYS[1], '[' .. c .. '.', '(' .. c .. '/')
    local ct = redis.call('HGET', KEYS[4], c)
    if n > 0 and ct then
      if redis.call('HINCRBY', KEYS[3], ct, -n) <= 0 then
        redis.call('HDEL', KEYS[3], ct)
      end
    end
    reclaimed = reclaimed + n
    redis.call('HDEL', KEYS[4], c)
  end
  redis.call('ZREM', KEYS[2], c)
end

if client ~= '' then
  redis.call('ZADD', KEYS[2], nowMs + ttl, client)
  redis.call('HSET', KEYS[4], client, tenant)
end

local length = redis.call('ZCARD', KEYS[1])
local bound = tonumber(redis.call('HGET', limitsKey, 'maxQueueLength') or '0') or 0
if own > 0 and (bound <= 0 or own < bound) then
  bound = own
end
local count = tonumber(redis.call('HGET', KEYS[3], tenant) or '0') or 0
local cap = tonumber(redis.call('HGET', tenantsKey, tenant .. '|maxQueued') or '0') or 0

local function weight(name)
  local w = tonumber(redis.call('HGET', tenantsKey, name .. '|weight') or '1') or 1
  if w <= 0 then
    w = 1
  end
  return w
end
local mine = weight(tenant)

-- The tenant's share of the bound: its weight over the weights of every tenant holding places
-- (and itself), so a tenant alone may use the whole queue.
local share = 0
if bound > 0 then
  local held = redis.call('HGETALL', KEYS[3])
  local total = mine
  for k = 1, #held, 2 do
    if held[k] ~= tenant and (tonumber(held[k + 1]) or 0) > 0 then
      total = total + weight(held[k])
    end
  end
  share = bound * mine / total
end

-- (The weight as a string: a Lua number in a reply is cut to an integer.)
local out = { length, reclaimed, bound, count, math.floor(share), cap, tostring(mine) }
local size = length
local added = 0
for i = 7, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], id) then
    out[#out + 1] = 1
  elseif cap > 0 and count >= cap then
    out[#out + 1] = 2
  elseif bound <= 0 or size < bound or count < share then
    redis.call('ZADD', KEYS[1], 0, id)
    size = size + 1
    count = count + 1
    added = added + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[3], tenant, added)
end
return out
