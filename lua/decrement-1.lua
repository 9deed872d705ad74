--[[
  Subtracts the same amount from every score of a stream.

  KEYS[1]  NAME:s    sorted set: item key -> score
-- @keys scores

  ARGV[1]  the amount to subtract

  Returns the number of items changed. A score that would not be finite fails
  the call before anything is written.
]]
local scores = KEYS[1]
-- @include batch
-- @include keycheck
-- @include score

local by = tonumber(ARGV[1])
local all = checked(1, "zset", "ZRANGE", 0, -1, "WITHSCORES")
local rescored = {}
for i = 1, #all, 2 do
  rescored[i] = finite_score(tonumber(all[i + 1]) - by, all[i])
  rescored[i + 1] = all[i]
end
count_in_slices("ZADD", scores, rescored)
return #all / 2
