--[[
  A client reads its result inbox at least once: results move to a pending list before they are
  handed out, and stay there until the NEXT take, which the client sends only after it handled
  them. This script is the only writer of the pending list, so the list always has its TTL. A connection lost in between leaves them in the pending list, where the client reads them
  again after reconnecting (LRANGE pending); its request ids make a second delivery harmless.

  KEYS[1]  inbox LIST    <root>:inbox:<client id>
  KEYS[2]  pending LIST  <root>:inbox:<client id>:pending
  ARGV[1]  most elements to take (1..1000)
  ARGV[2]  TTL of the pending list in ms (a dead client's list disappears by itself)

  Returns: the elements taken (possibly none), oldest first. The pending list then holds exactly
  them: the elements of the previous take are acknowledged (deleted) first.
]]

local count = tonumber(ARGV[1])
if count == nil or count < 1 or count > 1000 then
  return redis.error_reply('ERR inbox-take: count must be 1..1000')
end
redis.call('DEL', KEYS[2])
local items = redis.call('LRANGE', KEYS[1], 0, count - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return items
