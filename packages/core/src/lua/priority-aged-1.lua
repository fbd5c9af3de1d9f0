--[[
  Finds jobs of one priority band of a BullMQ queue that were added at or before a cutoff: the
  candidates for aging (protocol/priority.ts; the worker's queue upkeep). Read only: the worker
  moves each job with BullMQ's own changePriority, so BullMQ's markers, counters and states stay
  BullMQ's business.

  A band is looked at in windows, from `offset`, so a deep band is covered over a few calls
  rather than read whole each time; the reply says where the next call starts (0 past the end).

  KEYS[1]  BullMQ's prioritized ZSET  <bull prefix>:<queue>:prioritized  (score = priority * 2^32 + counter)
  ARGV[1]  BullMQ's job key prefix     <bull prefix>:<queue>:             (job hash = prefix .. id)
  ARGV[2]  lowest score of the band (inclusive)
  ARGV[3]  highest score of the band (exclusive)
  ARGV[4]  offset of the window in the band
  ARGV[5]  size of the window (jobs looked at)
  ARGV[6]  cutoff: a job added (its `timestamp`, ms) at or before it is returned
  The job hashes are read by name (not declared in KEYS): they share the queue's hash tag, so
  they live in the slot of KEYS[1] on a Redis Cluster.

  Returns: {next offset (0 = the band was read to its end), id, priority, id, priority, ...}
]]

local prefix = ARGV[1]
local offset, count, cutoff = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if prefix == nil or prefix == '' or offset == nil or count == nil or count < 1 or cutoff == nil then
  return redis.error_reply('ERR priority-aged: bad prefix, window or cutoff')
end

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '(' .. ARGV[3], 'LIMIT', offset, count)
local out = { #ids < count and 0 or offset + #ids }
for _, id in ipairs(ids) do
  local job = redis.call('HMGET', prefix .. id, 'timestamp', 'priority')
  local ts = tonumber(job[1])
  if ts ~= nil and ts <= cutoff then
    out[#out + 1] = id
    out[#out + 1] = job[2] or '0'
  end
end
return out
