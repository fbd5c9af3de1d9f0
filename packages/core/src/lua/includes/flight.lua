--[[
  Fragment: single-flight records and result delivery, shared by the claim, settle and tick scripts.

  A flight is ONE hash per cache key, <root>:flight:<cache key>:
    id   flight id: the request id of the owner, whose job computes it
    own  owner's client id (its heartbeat key says whether it is alive)
    dl   latest deadline of anyone waiting for it (Redis time, epoch ms)
    w:<client id> <request id> -> that waiter's deadline; one field per waiter
  It expires FLIGHT_GRACE_MS after `dl`, and never later than FLIGHT_MAX_MS from now: no caller,
  whatever timeout it asks for, can make a flight outlive that ceiling.

  Results go to client inboxes as ONE list element per inbox and call: lines "<request id> <payload>"
  joined by "\n" (payloads are JSON, which never holds a raw newline).

  Defines:
    FLIGHT_GRACE_MS, FLIGHT_MAX_MS
      The grace after the last deadline, and the ceiling of a flight's lifetime, in ms.
    flight_deadline(nowMs, deadline) -> number
      The deadline clamped to at most nowMs + FLIGHT_MAX_MS.
    flight_expire(flightKey, nowMs, dl)
      Sets the flight's TTL from its latest deadline dl.
    flight_out() -> outbox
      A table collecting messages per inbox key.
    flight_add(outbox, inboxKey, requestId, payload)
      Queues "<requestId> <payload>" for inboxKey.
    flight_settle(outbox, flightKey, ownerId, payload, inboxPrefix) -> number
      When the flight is still ownerId's: queues payload for every waiter (their inbox being
      inboxPrefix .. client id), deletes the flight and returns the number of waiters served.
      A flight that expired and was claimed again, or was taken over, belongs to someone else:
      it is left alone and 0 is returned (its waiters are served by their own flight).
    flight_flush(outbox, ttlMs)
      RPUSHes each inbox's messages as one element and sets the inbox TTL, so the inbox of a
      client that died disappears by itself.
]]

local FLIGHT_GRACE_MS = 1000
local FLIGHT_MAX_MS = 3600000

local function flight_deadline(nowMs, deadline)
  return math.min(deadline, nowMs + FLIGHT_MAX_MS)
end

local function flight_expire(flightKey, nowMs, dl)
  local ttl = math.max(dl - nowMs, 0) + FLIGHT_GRACE_MS
  redis.call('PEXPIRE', flightKey, math.min(ttl, FLIGHT_MAX_MS + FLIGHT_GRACE_MS))
end

local function flight_out()
  return { order = {}, lines = {} }
end

local function flight_add(outbox, inboxKey, requestId, payload)
  local lines = outbox.lines[inboxKey]
  if lines == nil then
    lines = {}
    outbox.lines[inboxKey] = lines
    outbox.order[#outbox.order + 1] = inboxKey
  end
  lines[#lines + 1] = requestId .. ' ' .. payload
end

local function flight_settle(outbox, flightKey, ownerId, payload, inboxPrefix)
  if redis.call('HGET', flightKey, 'id') ~= ownerId then
    return 0
  end
  local fields = redis.call('HKEYS', flightKey)
  local served = 0
  for _, f in ipairs(fields) do
    if string.sub(f, 1, 2) == 'w:' then
      local sep = string.find(f, ' ', 3, true)
      if sep then
        flight_add(outbox, inboxPrefix .. string.sub(f, 3, sep - 1), string.sub(f, sep + 1), payload)
        served = served + 1
      end
    end
  end
  redis.call('DEL', flightKey)
  return served
end

local function flight_flush(outbox, ttlMs)
  for _, inboxKey in ipairs(outbox.order) do
    redis.call('RPUSH', inboxKey, table.concat(outbox.lines[inboxKey], '\n'))
    redis.call('PEXPIRE', inboxKey, ttlMs)
  end
end
