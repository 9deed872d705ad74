--[[
  psadd of one item: the rules of add-13.lua with the fewest server calls.

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:exc     set: gated keys
  KEYS[4]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[5]  NAME:wake    list: wake-up tokens for blocked pullers (includes/wake.lua)
  KEYS[6]  NAME:held    hash: held item key -> the token holding it
  KEYS[7]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[8]  NAME:stats   hash: the stream's counters (includes/counters.lua)
  KEYS[9]  NAME:delayed sorted set: delayed item key -> unix ms it becomes waiting
  KEYS[10] NAME:dscores sorted set: delayed item key -> the score it will wait with
  KEYS[11] NAME:dlv     hash: item key -> deliveries so far, while not held
  KEYS[12] NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
  KEYS[13] NAME:limits  hash: flow control; aging's shift (includes/aging.lua)
-- @keys values scores gated cooling wake held dead stats delayed delayed_scores deliveries failures limits

  ARGV[1]  "1": re-add, clearing the key's gate and cool-down first
  ARGV[2]  "1": the caller has registered the stream's name (see add-13.lua)
  ARGV[3]  "1": replace: the score is set to ARGV[6], not added to
  ARGV[4]  item key
  ARGV[5]  value
  ARGV[6]  score increment (with ARGV[3], the score)
  ARGV[7]  when it starts waiting: "" (now; a delayed key keeps its time),
           "+N" (N ms from the server's clock) or "N" (unix ms)

  Returns {state, score, reason, until, delayed_until}: state 1 when none of
  the stream's keys existed before this call, else 0; or 2, with nothing
  written, when the stream does not exist and ARGV[2] is not "1". score is
  the new score (exact text; effective, includes/aging.lua), or false when the key was refused; then reason
  says why, as add-13.lua does ("held", "dead", "gated", "cooling"), and
  until, for "cooling", when the cool-down ends (unix seconds).
  delayed_until: when a delayed item starts waiting (unix ms), else false.
  Counts what it did.
]]
-- @include keycheck
-- @include clock
-- @include score
-- @include wake
-- @include counters
-- @include aging
local readd, replace, key = ARGV[1] == "1", ARGV[3] == "1", ARGV[4]

-- One EXISTS answers three questions: a key named n times counts n times, so
-- with NAME:exc and NAME:exp named three times each and NAME:held, NAME:dead
-- and NAME:delayed nine, present = items + 3 * gates + 9 * others, where
-- items (0-2) counts NAME:t and NAME:s, gates (0-2) the next two, and others
-- (0-3) the keys of held, dead and delayed items.
local present = redis.call("EXISTS", values, scores, gated, gated, gated, cooling, cooling, cooling,
  held, held, held, held, held, held, held, held, held, dead, dead, dead, dead, dead, dead, dead, dead, dead,
  delayed, delayed, delayed, delayed, delayed, delayed, delayed, delayed, delayed)
local born = present == 0
if born and ARGV[2] ~= "1" then return {2, false} end

-- every key is read before the first write (the counters' is checked by count)
local function refuse(reason, ends)
  tally(stats, "refused", 1)
  return {0, false, reason, ends or false, false}
end
local now, seconds = nil, nil  -- the server's clock, read only when needed
local function now_ms()
  if not now then now, seconds = clock() end
  return now
end
local later, pending = nil, nil
if present >= 9 then
  if checked(held, "hash", "HEXISTS", key) == 1 then return refuse("held") end
  if checked(dead, "zset", "ZSCORE", key) then return refuse("dead") end
  later = checked(delayed, "zset", "ZSCORE", key)
  if later then pending = checked(delayed_scores, "zset", "ZSCORE", key) or "0" end
  present = present % 9
end
local ended = false  -- a cool-down whose time has come: over, as psexpire would have it
if present >= 3 then
  if readd then
    expect(gated, "set")
    expect(cooling, "zset")
  else
    if checked(gated, "set", "SISMEMBER", key) == 1 then return refuse("gated") end
    local ends = checked(cooling, "zset", "ZSCORE", key)
    if ends then
      now_ms()
      if tonumber(ends) > math.floor(seconds) then return refuse("cooling", ends) end
      ended = true
    end
  end
end
local shift = aging_shift(limits, now)  -- (read before the first write)
local current = pending
local kept = false  -- a kept item whose cool-down is over: gone before it is added again
if present > 0 and not later then
  expect(values, "hash")
  current = effective(checked(scores, "zset", "ZSCORE", key), shift)
  if current and ended then
    current, kept = nil, true
    expect(deliveries, "hash")
    expect(failures, "hash")
  end
end
local score = ARGV[6]
if current and not replace then score = finite_score(tonumber(current) + tonumber(score), key) end
local due = later and tonumber(later) or nil
local given = ARGV[7]
if given ~= "" then
  due = string.sub(given, 1, 1) == "+" and now_ms() + tonumber(string.sub(given, 2)) or tonumber(given)
end
if due and due <= now_ms() then due = nil end  -- a time that has come means now
if due or later then
  expect(delayed, "zset")
  expect(delayed_scores, "zset")
end
if later then expect(values, "hash") end  -- (else read above, or no stream yet)
local queued = checked(wake, "list", "LLEN")

tally(stats, current and "updated" or "added", 1, "expired", ended and 1 or 0)  -- the first write
if readd and present >= 3 then
  redis.call("SREM", gated, key)
  redis.call("ZREM", cooling, key)
elseif ended then
  redis.call("ZREM", cooling, key)
end
if kept then
  redis.call("ZREM", scores, key)
  redis.call("HDEL", deliveries, key)
  redis.call("HDEL", failures, key)
end
redis.call("HSET", values, key, ARGV[5])
if due then
  redis.call("ZADD", delayed, due, key)
  redis.call("ZADD", delayed_scores, score, key)
  if current and not later then redis.call("ZREM", scores, key) end
else
  redis.call("ZADD", scores, stored(score, shift), key)
  if later then
    redis.call("ZREM", delayed, key)
    redis.call("ZREM", delayed_scores, key)
  end
end
wake_pullers(wake, 1, queued)
return {born and 1 or 0, score, false, false, due or false}
