--[[
  Fragment: deliver one request's outcome to its owner and to every waiter of its single-flight
  key, then clear the flight.

  Defines:
    flight_push(inboxKey, requestId, payload, touched)
      RPUSHes "<requestId> <payload>" to inboxKey and remembers inboxKey in the table `touched`
      (the caller sets each touched inbox's TTL once, with flight_expire_inboxes).
    flight_settle(markerKey, waitersKey, ownerId, payload, inboxPrefix, touched)
      Sends payload to every waiter listed in waitersKey (entries "<client id>|<request id>", the
      inbox being inboxPrefix .. client id), deletes the waiter list, and deletes markerKey when it
      still holds ownerId (a marker that expired and was claimed again belongs to someone else).
      Returns the number of waiters served.
    flight_expire_inboxes(touched, ttlMs)
      PEXPIREs every inbox in touched, so the inbox of a client that died disappears by itself.
]]

local function flight_push(inboxKey, requestId, payload, touched)
  redis.call('RPUSH', inboxKey, requestId .. ' ' .. payload)
  touched[inboxKey] = true
end

local function flight_settle(markerKey, waitersKey, ownerId, payload, inboxPrefix, touched)
  local waiters = redis.call('LRANGE', waitersKey, 0, -1)
  for _, w in ipairs(waiters) do
    local sep = string.find(w, '|', 1, true)
    if sep then
      flight_push(inboxPrefix .. string.sub(w, 1, sep - 1), string.sub(w, sep + 1), payload, touched)
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

local function flight_expire_inboxes(touched, ttlMs)
  for inboxKey in pairs(touched) do
    redis.call('PEXPIRE', inboxKey, ttlMs)
  end
end
