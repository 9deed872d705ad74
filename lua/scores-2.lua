--[[
  Reads waiting items' scores as they are shown: effective, with the points
  aging gave them (includes/aging.lua), by the server's clock, in the same
  call that reads them. (pskeys with scores or a bound, and psscores; a plain
  listing of keys needs no shift and is a ZREVRANGE.) Writes nothing.

  KEYS[1]  NAME:s      sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:limits hash: flow control; aging's shift (includes/aging.lua)
-- @keys scores limits

  ARGV[1]  "ranks": keys from rank ARGV[3] to rank ARGV[4] (-1: the last),
           highest score first;
           "below": keys scored strictly below the effective score ARGV[3]
           (exact text), highest first, from the ARGV[4]-th of them (0 the
           first), at most ARGV[5] (-1: all);
           "of": the scores of the keys in ARGV[3..], in their order
  ARGV[2]  "1": with each key's score ("ranks" and "below")

  Returns "ranks" and "below": key1, key2, ... (with scores: key1, score1,
  key2, score2, ...); "of": one score per key, false for a key not waiting.
  Scores as exact text.
]]
-- @include batch
-- @include keycheck
-- @include aging

local mode, withscores = ARGV[1], ARGV[2] == "1"
local shift = aging_shift(limits)
if mode == "of" then
  expect(scores, "zset")
  local keys = {}
  for i = 3, #ARGV do keys[i - 2] = ARGV[i] end
  local found = call_in_slices("ZMSCORE", scores, keys)
  if shift ~= 0 then
    for i = 1, #found do found[i] = effective(found[i], shift) end
  end
  return found
end
local found
if mode == "ranks" then
  found = withscores and checked(scores, "zset", "ZREVRANGE", ARGV[3], ARGV[4], "WITHSCORES")
    or checked(scores, "zset", "ZREVRANGE", ARGV[3], ARGV[4])
else
  local bound = "(" .. stored(ARGV[3], shift)
  found = withscores and checked(scores, "zset", "ZREVRANGEBYSCORE", bound, "-inf", "WITHSCORES", "LIMIT", ARGV[4], ARGV[5])
    or checked(scores, "zset", "ZREVRANGEBYSCORE", bound, "-inf", "LIMIT", ARGV[4], ARGV[5])
end
if withscores then effective_pairs(found, shift) end
return found
