--[[
  Adds to the score of an item already in the stream, waiting or delayed;
  never creates one.

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:dscores sorted set: delayed item key -> the score it will wait with
  KEYS[3]  NAME:limits  hash: flow control; aging's shift (includes/aging.lua)
-- @keys scores delayed_scores limits

  ARGV[1]  the amount to add (exact decimal text of a finite double)
  ARGV[2]  item key

  Returns the new (effective, includes/aging.lua) score (exact text), or false when the key is neither
  waiting nor delayed. A score that would not be finite fails the call with
  nothing written.
]]
-- @include keycheck
-- @include score
-- @include aging

local where = scores
local current = checked(scores, "zset", "ZSCORE", ARGV[2])
if not current then
  where = delayed_scores
  current = checked(delayed_scores, "zset", "ZSCORE", ARGV[2])
  if not current then return false end
end
local score = finite_score(tonumber(current) + tonumber(ARGV[1]), ARGV[2])
-- (a waiting item's is kept shifted: the same amount added to either)
local shift = where == scores and aging_shift(limits) or 0
redis.call("ZADD", where, score, ARGV[2])
return effective(score, shift)
