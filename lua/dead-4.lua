--[[
  Reads the dead items (those that ran out of deliveries), highest last score
  first: the order requeue would give them back in; each with its deliveries
  and its last failure.

  KEYS[1]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[2]  NAME:t       hash: item key -> value
  KEYS[3]  NAME:dlv     hash: item key -> deliveries so far
  KEYS[4]  NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
-- @keys dead values deliveries failures

  ARGV[1]  the first rank to read (0 is the first)
  ARGV[2]  the last rank to read; -1 for all

  Returns {keys, values, deliveries, reasons, failed_at}: five arrays in that
  order; a reason or a time is false where none is kept.
]]
-- @include batch
-- @include keycheck

local keys = checked(dead, "zset", "ZREVRANGE", ARGV[1], ARGV[2])
if #keys == 0 then return {{}, {}, {}, {}, {}} end
expect(values, "hash")
expect(deliveries, "hash")
expect(failures, "hash")
local found = call_in_slices("HMGET", values, keys)
local counts = call_in_slices("HMGET", deliveries, keys)
local packed = call_in_slices("HMGET", failures, keys)
local reasons, times = {}, {}
for i = 1, #keys do
  counts[i] = tonumber(counts[i] or 0)
  reasons[i], times[i] = false, false
  if packed[i] then
    local failure = cmsgpack.unpack(packed[i])
    reasons[i], times[i] = failure[1] or false, failure[2] or false
  end
end
return {keys, found, counts, reasons, times}
