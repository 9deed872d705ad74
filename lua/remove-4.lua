--[[
  Removes the given items: the acknowledgement of a pull that kept them.

  KEYS[1]  NAME:t    hash: item key -> value
  KEYS[2]  NAME:s    sorted set: item key -> score
  KEYS[3]  NAME:exc  set: gated keys
  KEYS[4]  NAME:stats hash: the stream's counters (includes/counters.lua)

  ARGV[1]  "1": gate the given keys (add them to NAME:exc)
  ARGV[2..] item keys

  Returns the number of keys that were in NAME:s.
]]
local values, scores, gated = KEYS[1], KEYS[2], KEYS[3]
-- @include batch
-- @include keycheck

local gate = ARGV[1] == "1"
local keys = {}
for i = 2, #ARGV do keys[#keys + 1] = ARGV[i] end
if #keys == 0 then return 0 end
expect(1, "hash")
expect(2, "zset")
if gate then expect(3, "set") end
expect(4, "hash")
local removed = count_in_slices("ZREM", scores, keys)
count_in_slices("HDEL", values, keys)
if gate then count_in_slices("SADD", gated, keys) end
if removed > 0 then redis.call("HINCRBY", KEYS[4], "removed", removed) end
return removed
