--[[
  Admission to a model's queue, bounded by maxQueueLength: reserves room for up to n requests in
  the count of requests enqueued and not yet answered, all clients together. What does not fit is
  refused by the caller (INFERQ_QUEUE_FULL) and never written.

  KEYS[1]  queued STRING  <root>:queued (an integer; absent = 0)
  ARGV[1]  n, the requests the caller wants to enqueue (>= 0)
  ARGV[2]  maxQueueLength (>= 1)

  Returns: {accepted, length before}: the first `accepted` requests may be enqueued (the count grew
  by that much); the rest must be refused.
]]

local n, max = tonumber(ARGV[1]), tonumber(ARGV[2])
if n == nil or max == nil or n < 0 or max < 1 then
  return redis.error_reply('ERR queue-reserve: n must be >= 0 and maxQueueLength >= 1')
end
local current = math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') or 0)
local accepted = math.min(n, math.max(0, max - current))
if accepted > 0 then
  redis.call('INCRBY', KEYS[1], accepted)
end
return { accepted, current }
