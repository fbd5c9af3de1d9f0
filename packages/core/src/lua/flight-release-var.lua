--[[
  A client gives up flights it owns but will not have computed (every caller gave up before it was
  sent, its enqueue failed, its job failed for good): each flight that is still this request's is
  closed, and its waiters get `payload` in their inboxes now (they claim again or fail), instead of
  waiting for a job that does not exist. A flight that is no longer ours (settled, expired, taken
  over) is left alone.

  The settle script does the same for a worker but declares the cache keys it writes; the client
  role may not write the cache (docs/acl/inferq-client.acl), and EVALSHA needs write permission on
  every declared key, so a client releases through this script, which declares only inboxes and
  flights. As in the settle script, a waiter's inbox must be declared: when one is not, nothing is
  written and the missing clients are named, for the caller to send the call again with them.

  KEYS[1..m]       inbox LIST   <root>:inbox:<client id>, one per client (KEYS[j], j = 1..m)
  KEYS[m+i]        flight HASH  <root>:flight:<cache key>, i = 1..n
  ARGV[1]          m, the number of inbox keys
  ARGV[2]          inbox key prefix (<root>:inbox:): a waiter's inbox is this .. client id
  ARGV[3]          TTL of the inboxes pushed to, in ms
  ARGV[4]          payload for the waiters (JSON, never a raw newline)
  ARGV[4+i]        request id that owns flight i (its flight id)

  Returns: {waiters served}, or {-1, client id, ...} when those waiters' inboxes were not declared
  (nothing written).
]]
-- @include flight.lua

local m = tonumber(ARGV[1])
local n = #ARGV - 4
if m == nil or m < 0 or #KEYS ~= m + n or tonumber(ARGV[3]) == nil then
  return redis.error_reply('ERR flight-release: malformed arguments')
end
for i = 1, n do
  if ARGV[4 + i] == '' then
    return redis.error_reply('ERR flight-release: empty request id')
  end
end

-- Read-only first: every waiter's inbox must be a declared key.
local declared = {}
for j = 1, m do
  declared[KEYS[j]] = true
end
local waitersOf, missing, seen = {}, { -1 }, {}
for i = 1, n do
  local waiters = flight_waiters(KEYS[m + i], ARGV[4 + i])
  waitersOf[i] = waiters
  flight_undeclared(waiters, declared, ARGV[2], seen, missing)
end
if #missing > 1 then
  return missing
end

local outbox = flight_out()
local served = 0
for i = 1, n do
  if waitersOf[i] then
    served = served + flight_serve(outbox, KEYS[m + i], waitersOf[i], ARGV[4], ARGV[2])
  end
end
flight_flush(outbox, ARGV[3])
return { served }
