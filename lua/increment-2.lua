--[[
  Adds to the score of an item already in the stream, waiting or delayed;
  never creates one.

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:dscores sorted set: delayed item key -> the score it will wait with
-- @keys scores delayed_scores

  ARGV[1]  the amount to add (exact decimal text of a finite double)
  ARGV[2]  item key

  Returns the new score (exact text), or false when the key is neither
  waiting nor delayed. A score that would not be finite fails the call with
  nothing written.
]]
-- @include keycheck
-- @include score

local where = scores
local current = checked(scores, "zset", "ZSCORE", ARGV[2])
if not current then
  where = delayed_scores
  current = checked(delayed_scores, "zset", "ZSCORE", ARGV[2])
  if not current then return false end
end
local score = finite_score(tonumber(current) + tonumber(ARGV[1]), ARGV[2])
redis.call("ZADD", where, score, ARGV[2])
return score
