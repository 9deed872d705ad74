--[[
  Adds to the score of an item already in the stream; never creates one.

  KEYS[1]  NAME:s    sorted set: item key -> score
-- @keys scores

  ARGV[1]  the amount to add (exact decimal text of a finite double)
  ARGV[2]  item key

  Returns the new score (exact text), or false when the key is not in the
  stream. A score that would not be finite fails the call with nothing written.
]]
local scores = KEYS[1]
-- @include keycheck
-- @include score

local current = checked(1, "zset", "ZSCORE", ARGV[2])
if not current then return false end
local score = finite_score(tonumber(current) + tonumber(ARGV[1]), ARGV[2])
redis.call("ZADD", scores, score, ARGV[2])
return score
