--[[
  Records a model's new queue shard count unless a worker is alive, in one step: a worker beats
  before it agrees on the count (worker-beat), so either this script sees it and refuses, or the
  worker starts after and reads the new count. (Jobs and clients are checked by the caller first.)

  KEYS[1]  workers ZSET    inferq:{m}:workers   worker id -> expiry (epoch ms, Redis time)
  KEYS[2]  shards STRING   inferq:{m}:shards    the model's queueShards
  ARGV[1]  the new count (the caller validated it)

  Returns: the ids of the live workers; empty when the count was set.
]]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
if #live == 0 then
  redis.call('SET', KEYS[2], ARGV[1])
end
return live
