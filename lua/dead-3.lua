--[[
  Reads the dead items (those that ran out of deliveries), highest last score
  first: the order requeue would give them back in.

  KEYS[1]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[2]  NAME:t       hash: item key -> value
  KEYS[3]  NAME:dlv     hash: item key -> deliveries so far

  ARGV[1]  the last rank to read (0 is the first); -1 for all

  Returns {keys, values, deliveries}: three arrays in that order.
]]
local dead, values, deliveries = KEYS[1], KEYS[2], KEYS[3]
-- @include batch
-- @include keycheck

local keys = checked(1, "zset", "ZREVRANGE", 0, ARGV[1])
if #keys == 0 then return {{}, {}, {}} end
expect(2, "hash")
expect(3, "hash")
local found = call_in_slices("HMGET", values, keys)
local counts = call_in_slices("HMGET", deliveries, keys)
for i = 1, #keys do counts[i] = tonumber(counts[i] or 0) end
return {keys, found, counts}
