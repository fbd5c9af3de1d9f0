--[[
  A worker's heartbeat in its model's registry of live workers, on Redis time (TIME), so that no
  clock of any machine is compared. Members whose expiry passed are dropped; the key itself
  expires with its newest member, so a model whose workers all died leaves nothing behind.

  KEYS[1]  workers ZSET  inferq:{m}:workers   worker id -> expiry (epoch ms, Redis time)
  ARGV[1]  the worker id
  ARGV[2]  ttlMs, how long the beat keeps the worker listed (> 0)

  Returns: the number of live workers after the beat (this one included).
]]

local ttl = tonumber(ARGV[2])
if ttl == nil or ttl <= 0 then
  return redis.error_reply('ERR worker-beat: ttlMs must be > 0')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
-- Every member expires by now + ttl at the latest (each beat uses the same ttl): the key may too.
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
