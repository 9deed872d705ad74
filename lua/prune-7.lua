--[[
  Removes the waiting items scored strictly below a threshold, with their
  deliveries and last failures.

  KEYS[1]  NAME:t     hash: item key -> value
  KEYS[2]  NAME:s     sorted set: item key -> score
  KEYS[3]  NAME:exc   set: gated keys
  KEYS[4]  NAME:dlv   hash: item key -> deliveries so far, while not held
  KEYS[5]  NAME:stats hash: the stream's counters (includes/counters.lua)
  KEYS[6]  NAME:fail  hash: item key -> msgpack {reason, unix ms, delivery}
  KEYS[7]  NAME:limits hash: flow control; aging's shift (includes/aging.lua)
-- @keys values scores gated deliveries stats failures limits

  ARGV[1]  the exclusive bound, "(" followed by the threshold (an effective
           score, includes/aging.lua)
  ARGV[2]  "1": gate the removed keys (add them to NAME:exc)

  Returns the removed keys, lowest score first.
]]
-- @include batch
-- @include keycheck
-- @include aging

local shift = aging_shift(limits)
local bound = ARGV[1]
if shift ~= 0 then bound = "(" .. stored(string.sub(bound, 2), shift) end
local removed = checked(scores, "zset", "ZRANGEBYSCORE", "-inf", bound)
if #removed == 0 then return removed end
expect(values, "hash")
if ARGV[2] == "1" then expect(gated, "set") end
local counted = expect(deliveries, "hash") > 0
local failed = expect(failures, "hash") > 0
expect(stats, "hash")
redis.call("ZREMRANGEBYSCORE", scores, "-inf", bound)
count_in_slices("HDEL", values, removed)
if counted then count_in_slices("HDEL", deliveries, removed) end
if failed then count_in_slices("HDEL", failures, removed) end
if ARGV[2] == "1" then count_in_slices("SADD", gated, removed) end
redis.call("HINCRBY", stats, "removed", #removed)
return removed
