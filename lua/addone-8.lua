--[[
  psadd of one item: the rules of add-8.lua with the fewest server calls.

  KEYS[1]  NAME:t    hash: item key -> value
  KEYS[2]  NAME:s    sorted set: item key -> score
  KEYS[3]  NAME:exc  set: gated keys
  KEYS[4]  NAME:exp  sorted set: cooling-down key -> unix time
  KEYS[5]  NAME:wake list: wake-up tokens for blocked pullers (includes/wake.lua)
  KEYS[6]  NAME:held hash: held item key -> the token holding it
  KEYS[7]  NAME:dead sorted set: dead item key -> its last score
  KEYS[8]  NAME:stats hash: the stream's counters (includes/counters.lua)

  ARGV[1]  "1": re-add, clearing the key's gate and cool-down first
  ARGV[2]  "1": the caller has registered the stream's name (see add-8.lua)
  ARGV[3]  "1": replace: the score is set to ARGV[6], not added to
  ARGV[4]  item key
  ARGV[5]  value
  ARGV[6]  score increment (with ARGV[3], the score)

  Returns {state, score, reason, until}: state 1 when none of the stream's
  keys existed before this call, else 0; or 2, with nothing written, when the
  stream does not exist and ARGV[2] is not "1". score is the new score (exact
  text), or false when the key was refused; then reason says why, as
  add-8.lua does ("held", "dead", "gated", "cooling"), and until, for
  "cooling", when the cool-down ends (unix seconds). Counts what it did.
]]
local values, scores, gated, cooling, wakes, held, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local STATS = 8
-- @include keycheck
-- @include score
-- @include wake
-- @include counters
local readd, replace, key = ARGV[1] == "1", ARGV[3] == "1", ARGV[4]

-- One EXISTS answers three questions: a key named n times counts n times, so
-- with NAME:exc and NAME:exp named three times each and NAME:held and
-- NAME:dead nine, present = items + 3 * gates + 9 * leased, where items (0-2)
-- counts NAME:t and NAME:s, gates (0-2) the next two, and leased (0-2) the
-- lease keys: whether any item is held or dead.
local present = redis.call("EXISTS", values, scores, gated, gated, gated, cooling, cooling, cooling,
  held, held, held, held, held, held, held, held, held, dead, dead, dead, dead, dead, dead, dead, dead, dead)
local born = present == 0
if born and ARGV[2] ~= "1" then return {2, false} end

-- every key is read before the first write (the counters' is checked by count)
local function refuse(reason, ends)
  tally(STATS, "refused", 1)
  return {0, false, reason, ends or false}
end
if present >= 9 then
  if checked(6, "hash", "HEXISTS", key) == 1 then return refuse("held") end
  if checked(7, "zset", "ZSCORE", key) then return refuse("dead") end
  present = present % 9
end
if present >= 3 then
  if readd then
    expect(3, "set")
    expect(4, "zset")
  else
    if checked(3, "set", "SISMEMBER", key) == 1 then return refuse("gated") end
    local ends = checked(4, "zset", "ZSCORE", key)
    if ends then return refuse("cooling", ends) end
  end
end
local score = ARGV[6]
local current = nil
if present > 0 then
  expect(1, "hash")
  current = checked(2, "zset", "ZSCORE", key)
  if current and not replace then score = finite_score(tonumber(current) + tonumber(score), key) end
end
local queued = checked(5, "list", "LLEN")

tally(STATS, current and "updated" or "added", 1)  -- the first write
if readd and present >= 3 then
  redis.call("SREM", gated, key)
  redis.call("ZREM", cooling, key)
end
redis.call("HSET", values, key, ARGV[5])
redis.call("ZADD", scores, score, key)
wake(wakes, 1, queued)
return {born and 1 or 0, score}
