--[[
  Subtracts the same amount from every score of a stream.

  KEYS[1]  NAME:s    sorted set: item key -> score

  ARGV[1]  the amount to subtract

  Returns the number of items changed.
]]
local scores = KEYS[1]
-- @include batch

local by = tonumber(ARGV[1])
local all = redis.call("ZRANGE", scores, 0, -1, "WITHSCORES")
local rescored = {}
for i = 1, #all, 2 do
  rescored[i] = string.format("%.17g", tonumber(all[i + 1]) - by)
  rescored[i + 1] = all[i]
end
if #rescored > 0 then call_in_slices("ZADD", scores, rescored) end
return #all / 2
