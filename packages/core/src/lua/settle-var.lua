--[[
  Worker side of a finished batch, in one round trip: writes the computed outputs to the cache
  (evicting least recently used entries), sends every item's outcome to the inbox of the client
  that asked, serves the waiters of each flight the item owns, and closes those flights. Writing
  the cache and closing the flight in one script means a request arriving just after sees either
  the flight (and joins it) or the cached value, never neither.

  Every key written is declared in KEYS (Redis Cluster's rule): a flight's waiters are found at
  run time, so their inboxes must be among the declared ones; when one is not (a client joined
  after the worker built the call), nothing is written and the script answers which clients'
  inboxes were missing, for the caller to send the call again with them.

  Each item is settled at most once per job: a bit per envelope item in the job's done bitmap is
  set here (last, once everything else was written), and an item whose bit is already set (a job re-run after a worker died past this point,
  or run twice after a lost lock) is skipped whole: no second answer, no second cache write, no
  second release of its place in the queue ledger (room-reserve-2.lua). An item admitted under
  maxQueueLength (q = 1) gives its place back in this same script (room mode 1), or, when the
  ledger lives in another slot (a Redis Cluster with several queue shards), the script names the
  request ids settled now for the caller to give back (room mode 2; giving back is idempotent).

  KEYS[1]              recency ZSET   <root>:cache:lru
  KEYS[2]              value HASH     <root>:cache:val
  KEYS[3]              expiry ZSET    <root>:cache:exp
  KEYS[4]              bytes STRING   <root>:cache:bytes (sum of the cached entries' sizes)
  KEYS[5]              hits ZSET      <root>:cache:hits: clients' cache hits, folded into the
                                      recency ZSET before anything is written or evicted
                                      (includes/lru-hits.lua: clients may not write the cache)
  KEYS[5+j]            inbox LIST     <root>:inbox:<client id>, j = 1..m (each client once): the
                                      items' clients and every client that may wait on their flights
  KEYS[5+m+f]          flight HASH    <root>:flight:<cache key>, f = 1..nf
  KEYS[5+m+nf+d]       done STRING    <root>:done:<job id> (a bitmap), d = 1..nd
  KEYS[#KEYS-1]        room ZSET      <model root>:room, the queue ledger (room mode 1 only)
  KEYS[#KEYS]          counts HASH    <model root>:room:counts, places held per tenant (room mode 1 only)
  ARGV[1]              cache max size (entries)
  ARGV[2]              cache TTL in ms (0 = none)
  ARGV[3]              inbox TTL in ms
  ARGV[4]              inbox key prefix (<root>:inbox:): a waiter's inbox is this .. client id
  ARGV[5]              m, the number of inbox keys
  ARGV[6]              nf, the number of flight keys
  ARGV[7]              TTL of the done bitmaps, in ms
  ARGV[8]              cache max bytes (value bytes + key bytes over all entries); an output
                       larger than this by itself is not cached (its callers still get it)
  ARGV[9]              room mode: 0 = no item is counted, 1 = give places back here (the last two
                       KEYS), 2 = return the places to give back
  ARGV[10]             T, the number of tenants named by the items' q
  ARGV[10+k]           tenant k, k = 1..T
  ARGV[10+T+i]         item i, one argument: "<j> <f> <d> <index> <q> <request id>\n<payload>\n<entry>" with
                         j      index of its client's inbox key (1..m)
                         f      index of the flight it owns, or 0
                         d      index of its job's done bitmap, or 0 (no at-most-once check)
                         index  its index in the job's envelope (bit offset in the bitmap)
                         q      k > 0 when it holds a place in the queue ledger (tenant k), else 0
                         payload  result payload (JSON, never a raw newline) for its callers
                         entry  cache key and output to cache, "<cache key> <output JSON>", or ''

  Returns: {entries evicted, waiters served, items skipped as already settled,
            outputs not cached for being larger than the cache max bytes,
            places given back (mode 1; else 0), "<tenant> <request id>" to give back (mode 2)...}
       or {-1, client id, ...} when those waiters' inboxes were not declared (nothing written)
]]
-- @include lru-put.lua
-- @include lru-hits.lua
-- @include lru-expire.lua
-- @include flight.lua

-- KEYS before the inboxes: the four cache keys and the hits ZSET.
local C = 5
local m, nf = tonumber(ARGV[5]), tonumber(ARGV[6])
local maxBytes = tonumber(ARGV[8])
local roomMode = tonumber(ARGV[9])
local nt = tonumber(ARGV[10])
if m == nil or nf == nil or maxBytes == nil or maxBytes < 1 or nt == nil or (roomMode ~= 0 and roomMode ~= 1 and roomMode ~= 2) then
  return redis.error_reply('ERR settle: malformed arguments')
end
local TENANT = {}
for k = 1, nt do
  TENANT[k] = ARGV[10 + k]
end
local A = 10 + nt
local n = #ARGV - A
local nd = #KEYS - C - m - nf - (roomMode == 1 and 2 or 0)

-- Each item is one argument (fewer arguments: less work for the client library and for Redis
-- per item): "<j> <f> <d> <index> <q> <request id>\n<payload>\n<cache entry>".
local J, F, D, IDX, Q, RID, PAY, ENT = {}, {}, {}, {}, {}, {}, {}, {}
for i = 1, n do
  local s = ARGV[A + i]
  local nl1 = string.find(s, '\n', 1, true)
  local nl2 = nl1 and string.find(s, '\n', nl1 + 1, true)
  local j, f, d, idx, q, rid
  if nl2 then
    j, f, d, idx, q, rid = string.match(string.sub(s, 1, nl1 - 1), '^(%d+) (%d+) (%d+) (%d+) (%d+) (%S+)$')
  end
  j, f, d, q, idx = tonumber(j), tonumber(f), tonumber(d), tonumber(q), tonumber(idx)
  -- An envelope index past 2^23 would make a bitmap of over a megabyte: no envelope is that long.
  if not rid or j < 1 or j > m or f > nf or d > nd or q > nt or idx >= 8388608 then
    return redis.error_reply('ERR settle: malformed item ' .. i)
  end
  J[i], F[i], D[i], IDX[i], Q[i], RID[i] = j, f, d, idx, q, rid
  PAY[i] = string.sub(s, nl1 + 1, nl2 - 1)
  ENT[i] = string.sub(s, nl2 + 1)
end

-- The items of each done bitmap (bitmap index d -> item indices).
local function by_bitmap(indices)
  local of = {}
  for _, i in ipairs(indices) do
    if D[i] > 0 then
      local list = of[D[i]]
      if list == nil then
        list = {}
        of[D[i]] = list
      end
      list[#list + 1] = i
    end
  end
  return of
end
local all = {}
for i = 1, n do
  all[i] = i
end
-- Each bitmap is read whole with one GET and, below, written whole with one SET: the script is
-- atomic, and one call per job costs less than BITFIELD's GET/SET per bit (measured: ~1.5 us of
-- Redis CPU per item at 64 items). Redis numbers bits from the most significant bit of byte 0,
-- so the key stays a bitmap that GETBIT (and the worker's re-run check) reads as before.
local bitmap = {}
local already = {}
for d, items in pairs(by_bitmap(all)) do
  local s = redis.call('GET', KEYS[C + m + nf + d])
  if not s then
    s = ''
  end
  bitmap[d] = s
  for _, i in ipairs(items) do
    local byte = string.byte(s, math.floor(IDX[i] / 8) + 1)
    already[i] = byte ~= nil and bit.band(byte, bit.rshift(128, IDX[i] % 8)) ~= 0
  end
end

-- Pass 1: which items are settled now (their done bit was not set), and what they cache.
local live = {}
local cacheKeys, cacheValues = {}, {}
local skipped = 0
for i = 1, n do
  if not already[i] then
    live[#live + 1] = i
    local entry = ENT[i]
    if entry ~= '' then
      local sep = string.find(entry, ' ', 1, true)
      cacheKeys[#cacheKeys + 1] = string.sub(entry, 1, sep - 1)
      cacheValues[#cacheValues + 1] = string.sub(entry, sep + 1)
    end
  else
    skipped = skipped + 1
  end
end
-- Pass 2, still read-only: every waiter's inbox must be a declared key.
local declared = {}
for j = 1, m do
  declared[KEYS[C + j]] = true
end
local waitersOf, missing, seen = {}, { -1 }, {}
for _, i in ipairs(live) do
  if F[i] > 0 then
    local waiters = flight_waiters(KEYS[C + m + F[i]], RID[i])
    waitersOf[i] = waiters
    flight_undeclared(waiters, declared, ARGV[4], seen, missing)
  end
end
if #missing > 1 then
  return missing
end

-- Cache writes first, in one bulk write, so every waiter served below could
-- equally have read the value from the cache.
local evicted, tooLarge = 0, 0
if #cacheKeys > 0 then
  local c = lru_open(KEYS[1], KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[1]), maxBytes, tonumber(ARGV[2]))
  -- Clients' hits first: eviction below must see every entry's latest use.
  lru_fold_hits(c, KEYS[5])
  if c.ttlMs > 0 then
    lru_purge_expired(c, 64)
  end
  evicted = lru_put_many(c, cacheKeys, cacheValues)
  tooLarge = c.tooLarge
end

local outbox = flight_out()
local served = 0
for _, i in ipairs(live) do
  flight_add(outbox, KEYS[C + J[i]], RID[i], PAY[i])
  if waitersOf[i] then
    served = served + flight_serve(outbox, KEYS[C + m + F[i]], waitersOf[i], PAY[i], ARGV[4])
  end
end
flight_flush(outbox, ARGV[3])

-- Done bits last: if a write above failed (the script stops there), nothing is marked settled
-- and a retry delivers again (a duplicate is dropped by the client), rather than never.
local written = {}
for d, items in pairs(by_bitmap(live)) do
  local old = bitmap[d]
  local bytes = {}
  for b = 1, #old do
    bytes[b] = string.byte(old, b)
  end
  for _, i in ipairs(items) do
    local b = math.floor(IDX[i] / 8) + 1
    for pad = #bytes + 1, b do
      bytes[pad] = 0
    end
    bytes[b] = bit.bor(bytes[b], bit.rshift(128, IDX[i] % 8))
  end
  for b = 1, #bytes do
    bytes[b] = string.char(bytes[b])
  end
  redis.call('SET', KEYS[C + m + nf + d], table.concat(bytes), 'PX', ARGV[7])
  written[d] = true
end
for d = 1, nd do
  if not written[d] then
    redis.call('PEXPIRE', KEYS[C + m + nf + d], ARGV[7])
  end
end

-- Places in the queue ledger, given back once: only items settled now (their bit was not set),
-- grouped by tenant so each tenant's count goes down by exactly what left the ledger.
local reply = { evicted, served, skipped, tooLarge, 0 }
local byTenant = {}
for _, i in ipairs(live) do
  local q = Q[i]
  if q > 0 then
    local ids = byTenant[q]
    if ids == nil then
      ids = {}
      byTenant[q] = ids
    end
    ids[#ids + 1] = RID[i]
  end
end
for q, ids in pairs(byTenant) do
  if roomMode == 1 then
    local gone = 0
    for s0 = 1, #ids, 500 do
      gone = gone + redis.call('ZREM', KEYS[#KEYS - 1], unpack(ids, s0, math.min(s0 + 499, #ids)))
    end
    if gone > 0 and redis.call('HINCRBY', KEYS[#KEYS], TENANT[q], -gone) <= 0 then
      redis.call('HDEL', KEYS[#KEYS], TENANT[q])
    end
    reply[5] = reply[5] + gone
  elseif roomMode == 2 then
    for _, id in ipairs(ids) do
      reply[#reply + 1] = TENANT[q] .. ' ' .. id
    end
  end
end
return reply
