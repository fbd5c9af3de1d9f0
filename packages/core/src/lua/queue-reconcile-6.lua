--[[
  Repairs a model's queue count when nothing can be waiting: requests whose jobs were removed by
  an operator or lost with Redis data are never answered, so they are never given back. When
  BullMQ holds no job in any waiting or running state, the count must be zero.

  KEYS[1]  queued STRING      <root>:queued
  KEYS[2]  wait LIST          <bullmq prefix>:{<model>}:wait
  KEYS[3]  active LIST        <bullmq prefix>:{<model>}:active
  KEYS[4]  delayed ZSET       <bullmq prefix>:{<model>}:delayed
  KEYS[5]  prioritized ZSET   <bullmq prefix>:{<model>}:prioritized
  KEYS[6]  paused LIST        <bullmq prefix>:{<model>}:paused
  ARGV     none

  Returns: the count before when it was reset, else -1.
]]

if redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3]) + redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[5]) + redis.call('LLEN', KEYS[6]) > 0 then
  return -1
end
local before = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if before ~= 0 then
  redis.call('DEL', KEYS[1])
  return before
end
return -1
