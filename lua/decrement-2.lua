--[[
  Subtracts the same amount from every score of a stream: the waiting items'
  and the delayed items' (they wait later with it).

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:dscores sorted set: delayed item key -> the score it will wait with
-- @keys scores delayed_scores

  ARGV[1]  the amount to subtract

  Returns the number of items changed. A score that would not be finite fails
  the call before anything is written.
]]
-- @include batch
-- @include keycheck
-- @include score

local by = tonumber(ARGV[1])
local changed = {}
for index, key in ipairs({scores, delayed_scores}) do  -- every new score is worked out before the first write
  local all = checked(key, "zset", "ZRANGE", 0, -1, "WITHSCORES")
  local rescored = {}
  for i = 1, #all, 2 do
    rescored[i] = finite_score(tonumber(all[i + 1]) - by, all[i])
    rescored[i + 1] = all[i]
  end
  changed[index] = rescored
end
count_in_slices("ZADD", scores, changed[1])
count_in_slices("ZADD", delayed_scores, changed[2])
return (#changed[1] + #changed[2]) / 2
