--[[
  Gives back the places of requests in a model's queue ledger (see room-reserve-2.lua): requests
  answered (a worker's settle on a Redis Cluster, where the ledger is in another slot than the
  shard's settle script), or admitted and then never enqueued (their callers gave up, the enqueue
  failed). Idempotent per request id: giving back twice is giving back once.

  KEYS[1]  room ZSET  <model root>:room
  ARGV     request ids

  Returns: the places given back (requests that were in the ledger).
]]

if #ARGV == 0 then
  return 0
end
local n = 0
for i = 1, #ARGV, 500 do
  n = n + redis.call('ZREM', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
return n
