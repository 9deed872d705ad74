--[[
  psadd of one item: the rules of add-5.lua with the fewest server calls.

  KEYS[1]  NAME:t    hash: item key -> value
  KEYS[2]  NAME:s    sorted set: item key -> score
  KEYS[3]  NAME:exc  set: gated keys
  KEYS[4]  NAME:exp  sorted set: cooling-down key -> unix time
  KEYS[5]  NAME:wake list: wake-up tokens for blocked pullers (see add-5.lua)

  ARGV[1]  "1": re-add, clearing the key's gate and cool-down first
  ARGV[2]  item key
  ARGV[3]  value
  ARGV[4]  score increment

  Returns {born, score}: born is 1 when none of the stream's keys existed
  before this call (the caller registers the name), else 0; score is the new
  score (exact text), or false when refused.
]]
local values, scores, gated, cooling, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local WAKE_TOKENS = 16
local key = ARGV[2]

local born = false
if ARGV[1] == "1" then
  born = redis.call("EXISTS", values, scores, gated, cooling) == 0
  redis.call("SREM", gated, key)
  redis.call("ZREM", cooling, key)
elseif redis.call("EXISTS", gated, cooling) == 0 then  -- nothing is gated or cooling
  born = redis.call("EXISTS", values, scores) == 0
elseif redis.call("SISMEMBER", gated, key) == 1 or redis.call("ZSCORE", cooling, key) then
  return {0, false}
end
redis.call("HSET", values, key, ARGV[3])
local score = redis.call("ZINCRBY", scores, ARGV[4], key)
local queued = redis.call("LLEN", wake)
if queued < WAKE_TOKENS then
  redis.call("LPUSH", wake, "1")
  if queued == 0 then redis.call("EXPIRE", wake, 60) end  -- a new list
end
return {born and 1 or 0, score}
