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

-- One EXISTS answers two questions: a key named n times counts n times, so
-- with NAME:exc and NAME:exp named three times each, present = items + 3 * gates,
-- where items (0-2) counts NAME:t and NAME:s, and gates (0-2) the other two.
local present = redis.call("EXISTS", values, scores, gated, gated, gated, cooling, cooling, cooling)
if ARGV[1] == "1" then
  redis.call("SREM", gated, key)
  redis.call("ZREM", cooling, key)
elseif present >= 3 and (redis.call("SISMEMBER", gated, key) == 1 or redis.call("ZSCORE", cooling, key)) then
  return {0, false}
end
redis.call("HSET", values, key, ARGV[3])
local score = redis.call("ZINCRBY", scores, ARGV[4], key)
local queued = redis.call("LLEN", wake)
if queued < WAKE_TOKENS then
  redis.call("LPUSH", wake, "1")
  if queued == 0 then redis.call("EXPIRE", wake, 60) end  -- a new list
end
return {present == 0 and 1 or 0, score}
