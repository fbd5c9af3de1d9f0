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
    flight_waiters(flightKey, ownerId) -> {{client id, request id}, ...} or nil
      The flight's waiters when it is still ownerId's; nil when it is not (it expired and was
      claimed again, or was taken over: its waiters are served by their own flight). Read-only,
      so a script can check every inbox it will write was declared in KEYS before writing.
    flight_undeclared(waiters, declared, inboxPrefix, seen, missing)
      Appends to missing the client id of each waiter whose inbox is not in declared (a set
      of the script's KEYS), once per client (seen): what the caller must declare and resend.
    flight_serve(outbox, flightKey, waiters, payload, inboxPrefix) -> number
      Queues payload for each of those waiters (their inbox being inboxPrefix .. client id),
      marks the flight for deletion and returns the number of waiters served.
    flight_flush(outbox, ttlMs)
      RPUSHes each inbox's messages as one element and sets the inbox TTL, so the inbox of a
      client that died disappears by itself; then deletes the served flights in one DEL.
  Every redis.call from Lua costs about a microsecond of Redis CPU beyond the command itself, more
  than most of these commands: per-item work is done in bulk calls wherever the result is the same.
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
  return { order = {}, lines = {}, served = {} }
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

local function flight_waiters(flightKey, ownerId)
  -- One HGETALL rather than HGET id + HKEYS: the fields are few and their values short.
  local all = redis.call('HGETALL', flightKey)
  local id
  local waiters = {}
  for k = 1, #all, 2 do
    local f = all[k]
    if f == 'id' then
      id = all[k + 1]
    elseif string.sub(f, 1, 2) == 'w:' then
      local sep = string.find(f, ' ', 3, true)
      if sep then
        waiters[#waiters + 1] = { string.sub(f, 3, sep - 1), string.sub(f, sep + 1) }
      end
    end
  end
  if id ~= ownerId then
    return nil
  end
  return waiters
end

-- Appends to `missing` each waiter's client whose inbox (inboxPrefix .. client)
-- is not among the script's `declared` keys, once per client (`seen`): a
-- Cluster-safe script must name every key it writes, so it returns these
-- for the caller to declare and call again.
local function flight_undeclared(waiters, declared, inboxPrefix, seen, missing)
  for _, w in ipairs(waiters or {}) do
    if not declared[inboxPrefix .. w[1]] and not seen[w[1]] then
      seen[w[1]] = true
      missing[#missing + 1] = w[1]
    end
  end
end

local function flight_serve(outbox, flightKey, waiters, payload, inboxPrefix)
  for _, w in ipairs(waiters) do
    flight_add(outbox, inboxPrefix .. w[1], w[2], payload)
  end
  outbox.served[#outbox.served + 1] = flightKey
  return #waiters
end

local function flight_flush(outbox, ttlMs)
  for _, inboxKey in ipairs(outbox.order) do
    redis.call('RPUSH', inboxKey, table.concat(outbox.lines[inboxKey], '\n'))
    redis.call('PEXPIRE', inboxKey, ttlMs)
  end
  local served = outbox.served
  for i = 1, #served, 500 do
    redis.call('DEL', unpack(served, i, math.min(i + 499, #served)))
  end
end
