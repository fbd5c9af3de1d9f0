--[[
  Fragment: deliver outcomes to client inboxes and to the waiters of single-flight keys.

  Messages are gathered per inbox and pushed as ONE list element per inbox and call: lines
  "<request id> <payload>" joined by "\n" (payloads are JSON, which never holds a raw newline),
  so a batch of 32 results for one client is one RPUSH, and the client reads it as one element.

  Defines:
    flight_out() -> outbox
      A table collecting messages per inbox key.
    flight_add(outbox, inboxKey, requestId, payload)
      Queues "<requestId> <payload>" for inboxKey.
    flight_settle(outbox, markerKey, waitersKey, ownerId, payload, inboxPrefix) -> number
      Queues payload for every waiter listed in waitersKey (entries "<client id>|<request id>", the
      inbox being inboxPrefix .. client id), deletes the waiter list, and deletes markerKey when it
      still holds ownerId (a marker that expired and was claimed again belongs to someone else).
      Returns the number of waiters served.
    flight_flush(outbox, ttlMs)
      RPUSHes each inbox's messages as one element and sets the inbox TTL, so the inbox of a
      client that died disappears by itself.
]]

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

local function flight_settle(outbox, markerKey, waitersKey, ownerId, payload, inboxPrefix)
  local waiters = redis.call('LRANGE', waitersKey, 0, -1)
  for _, w in ipairs(waiters) do
    local sep = string.find(w, '|', 1, true)
    if sep then
      flight_add(outbox, inboxPrefix .. string.sub(w, 1, sep - 1), string.sub(w, sep + 1), payload)
    end
  end
  if #waiters > 0 then
    redis.call('DEL', waitersKey)
  end
  if redis.call('GET', markerKey) == ownerId then
    redis.call('DEL', markerKey)
  end
  return #waiters
end

local function flight_flush(outbox, ttlMs)
  for _, inboxKey in ipairs(outbox.order) do
    redis.call('RPUSH', inboxKey, table.concat(outbox.lines[inboxKey], '\n'))
    redis.call('PEXPIRE', inboxKey, ttlMs)
  end
end
