--[[
  Gives back the places of one tenant's requests in a model's queue ledger (see
  room-reserve-4.lua): requests answered (a worker's settle on a Redis Cluster, where the ledger
  is in another slot than the shard's settle script), or admitted and then never enqueued (their
  callers gave up, the enqueue failed, the job vanished unanswered). Idempotent per request id:
  giving back twice is giving back once, and the tenant's count goes down by what left.

  KEYS[1]  room ZSET     <model root>:room
  KEYS[2]  counts HASH   <model root>:room:counts (tenant -> places held)
  ARGV[1]  tenant of the requests
  ARGV[2+] request ids

  Returns: the places given back (requests that were in the ledger).
]]

local tenant = ARGV[1]
if tenant == nil or tenant == '' then
  return redis.error_reply('ERR room-release: no tenant')
end
local n = 0
for i = 2, #ARGV, 500 do
  n = n + redis.call('ZREM', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
if n > 0 and redis.call('HINCRBY', KEYS[2], tenant, -n) <= 0 then
  redis.call('HDEL', KEYS[2], tenant)
end
return n
