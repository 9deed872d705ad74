--[[
  Moves the deadline of everything a lease still holds.

  KEYS[1]  NAME:held    hash: held item key -> the token holding it
  KEYS[2]  NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[3]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
-- @keys held leases lease

  ARGV[1]  the token
  ARGV[2]  the new lease's length in ms, from now

  Returns the new deadline (unix ms), or false when the token holds nothing
  (its lease ran out, or it gave back or acknowledged every item).
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include holding

local now = clock()  -- (holding() reads, and so checks, all three keys before a write)
local mine = holding(held, leases, lease, ARGV[1], nil, now)
if not mine then return false end
if #mine == 0 then
  forget(leases, lease, ARGV[1])
  return false
end
local deadline = now + tonumber(ARGV[2])
redis.call("ZADD", leases, "XX", deadline, ARGV[1])
return deadline
