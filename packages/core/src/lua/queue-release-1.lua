--[[
  Gives back room in a model's queue count: requests answered (a worker's settle), or reserved and
  then not enqueued (a failed addBulk). Never below zero; the key goes at zero.

  KEYS[1]  queued STRING  <root>:queued
  ARGV[1]  n, the requests to give back (>= 0)

  Returns: the count after.
]]

local n = tonumber(ARGV[1])
if n == nil or n < 0 then
  return redis.error_reply('ERR queue-release: n must be >= 0')
end
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local after = math.max(0, current - n)
if after == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], after)
end
return after
