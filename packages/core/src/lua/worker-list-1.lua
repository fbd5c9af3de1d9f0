--[[
  The live workers of a model: members of its registry whose expiry is still ahead on Redis time.

  KEYS[1]  workers ZSET  inferq:{m}:workers   worker id -> expiry (epoch ms, Redis time)
  ARGV     none

  Returns: the ids of the live workers, by expiry.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
