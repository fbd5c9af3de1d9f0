--[[
  A client's periodic tick, in one round trip: renews its heartbeat (the key that tells waiters in
  other processes that this client still owns its flights), reports Redis time (the client keeps
  deadlines on Redis time) and how many result elements wait unread, and checks the requests that
  have waited long:
    - jobs: does the job carrying our requests still exist, and did it fail for good?
    - flights we joined: are we still in them, is their owner alive? A flight whose owner's
      heartbeat expired is taken over: this request becomes its owner (the caller enqueues it) and
      every other waiter stays in it, to be served by the new owner's job.
    - flights we own: are they still ours, and how many waiters do they have?
  A later deadline of ours is recorded in the flight, so the flight lives as long as we wait.

  KEYS[1]                heartbeat STRING <root>:client:<client id>
  KEYS[2]                inbox LIST       <root>:inbox:<client id>
  KEYS[3]                pending LIST     <root>:inbox:<client id>:pending
  KEYS[3+j]              job HASH         <bullmq prefix>:{<model>}:<job id>, j = 1..nJ
  KEYS[3+nJ+2w-1]        flight HASH      of joined flight w = 1..nW
  KEYS[3+nJ+2w]          heartbeat STRING of that flight's owner, as last known
  KEYS[3+nJ+2nW+o]       flight HASH      of owned flight o = 1..nO
  ARGV[1]                heartbeat TTL in ms
  ARGV[2]                client id
  ARGV[3], [4], [5]      nJ, nW, nO
  ARGV[6+3(w-1)+0..2]    joined flight w: our request id, the flight id we joined, our deadline (epoch ms)
  ARGV[6+3nW+2(o-1)+0..1] owned flight o: its id (our request id), our deadline (epoch ms)
  ARGV[#ARGV-1]          epoch STRING     <root>:cache:epoch (bumped by every clearCache), read only
  ARGV[#ARGV]            served STRING    <root>:served (model version and quantization the workers
                                          serve), read only
  The last two are read without being declared in KEYS: the client role may read them but not
  write them (docs/acl/inferq-client.acl), and EVALSHA needs write permission on every declared
  key. They share the shard's hash tag, so on Redis Cluster they are in the script's slot.

  Returns: {now (Redis time, epoch ms), unread result elements (inbox + pending), cache epoch (or ''),
  served model (or ''), replies...} with,
  in order, one reply per job, per joined flight, per owned flight (codes: protocol/client-tick.ts):
    job:    0 gone (finished with a result, or removed), 1 waiting or running, 2 failed for good
    joined: {0} we are not in it (settled, expired or lost), {1} fine, {2, flight id, owner}
            taken over by another waiter (now its flight), {3} taken over by us: enqueue it
    owned:  -1 not ours (settled, expired or taken over), else the number of waiters
]]
-- @include flight.lua

local nJ, nW, nO = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if nJ == nil or nW == nil or nO == nil or #KEYS ~= 3 + nJ + 2 * nW + nO or #ARGV ~= 7 + 3 * nW + 2 * nO then
  return redis.error_reply('ERR client-tick: malformed arguments')
end
for w = 1, nW do
  if tonumber(ARGV[6 + 3 * (w - 1) + 2]) == nil then
    return redis.error_reply('ERR client-tick: bad deadline')
  end
end
for o = 1, nO do
  if tonumber(ARGV[6 + 3 * nW + 2 * (o - 1) + 1]) == nil then
    return redis.error_reply('ERR client-tick: bad deadline')
  end
end

local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local client = ARGV[2]
redis.call('SET', KEYS[1], nowMs, 'PX', ARGV[1])
local out = { nowMs, redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3]), redis.call('GET', ARGV[#ARGV - 1]) or '', redis.call('GET', ARGV[#ARGV]) or '' }

-- Records a later deadline of ours in the flight (and its TTL).
local function extend(flightKey, field, deadline)
  deadline = flight_deadline(nowMs, math.floor(deadline))
  if field then
    redis.call('HSET', flightKey, field, deadline)
  end
  local dl = tonumber(redis.call('HGET', flightKey, 'dl')) or 0
  if deadline > dl then
    redis.call('HSET', flightKey, 'dl', deadline)
    flight_expire(flightKey, nowMs, deadline)
  end
end

for j = 1, nJ do
  local job = redis.call('HMGET', KEYS[3 + j], 'finishedOn', 'returnvalue', 'data')
  if not job[3] then
    out[#out + 1] = 0
  elseif job[1] and not job[2] then
    out[#out + 1] = 2
  elseif job[1] then
    out[#out + 1] = 0
  else
    out[#out + 1] = 1
  end
end

for w = 1, nW do
  local flightKey, ownerAlive = KEYS[3 + nJ + 2 * w - 1], KEYS[3 + nJ + 2 * w]
  local a = 6 + 3 * (w - 1)
  local requestId, flightId, deadline = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local field = 'w:' .. client .. ' ' .. requestId
  local f = redis.call('HMGET', flightKey, 'id', 'own', field)
  if not f[3] then
    out[#out + 1] = { 0 }
  elseif f[1] ~= flightId then
    extend(flightKey, field, deadline)
    out[#out + 1] = { 2, f[1] or '', f[2] or '' }
  elseif redis.call('EXISTS', ownerAlive) == 1 then
    if deadline > tonumber(f[3]) then
      extend(flightKey, field, deadline)
    end
    out[#out + 1] = { 1 }
  else
    -- The owner died before its job could finish (or before it was enqueued): we own it now.
    redis.call('HDEL', flightKey, field)
    redis.call('HSET', flightKey, 'id', requestId, 'own', client)
    extend(flightKey, nil, deadline)
    out[#out + 1] = { 3 }
  end
end

for o = 1, nO do
  local flightKey = KEYS[3 + nJ + 2 * nW + o]
  local a = 6 + 3 * nW + 2 * (o - 1)
  if redis.call('HGET', flightKey, 'id') ~= ARGV[a] then
    out[#out + 1] = -1
  else
    extend(flightKey, nil, tonumber(ARGV[a + 1]))
    out[#out + 1] = redis.call('HLEN', flightKey) - 3
  end
end
return out
