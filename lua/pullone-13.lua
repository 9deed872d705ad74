--[[
  pspull of one item, purged: the rules of pull-13.lua with the fewest server
  calls (the single pull is the most common call of all).

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:exc     set: gated keys
  KEYS[4]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[5]  NAME:held    hash: held item key -> the token holding it
  KEYS[6]  NAME:leases  sorted set: token -> deadline (unix ms, server clock)
  KEYS[7]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[8]  NAME:dlv     hash: item key -> deliveries so far, while not held
  KEYS[9]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[10] NAME:stats   hash: the stream's counters (includes/counters.lua)
  KEYS[11] NAME:delayed sorted set: delayed item key -> unix ms it becomes waiting
  KEYS[12] NAME:dscores sorted set: delayed item key -> the score it will wait with
  KEYS[13] NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
-- @keys values scores gated cooling held leases lease deliveries dead stats delayed delayed_scores failures

  ARGV[1]  "1": gate the pulled key (add it to NAME:exc)
  ARGV[2]  cool-down: "none"; "in" (ARGV[3] seconds from the server's clock);
           "at" (ARGV[3] is a unix time). Stored rounded up to whole seconds.
  ARGV[3]  seconds (see ARGV[2])

  Returns {key, value}; when nothing was pulled, {} or {ms} as pull-13.lua.
  What is due comes first (see pull-13.lua). Counts what it did.
]]
local values, scores, gated, cooling = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local held, leases, lease, deliveries, dead = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local STATS = 10
local delayed, delayed_scores, failures = KEYS[11], KEYS[12], KEYS[13]
-- @include batch
-- @include keycheck
-- @include cooldown
-- @include reclaim
-- @include counters
-- @include due

local time = redis.call("TIME")  -- one TIME for the leases, what is due and the cool-down
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

-- every key is read before the first write
expect(1, "hash")
local waiting = expect(2, "zset")
local gate = ARGV[1] == "1"
if gate then expect(3, "set") end
local at = cool_down_end(ARGV[2], ARGV[3], time)
-- what is due comes first: every key is read (and checked) only when something is
local due_leases = #checked(6, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
local due_cool_downs = #checked(4, "zset", "ZRANGEBYSCORE", "-inf", time[1], "LIMIT", 0, 1) > 0
local due_items = #checked(11, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
if due_leases or due_cool_downs or due_items then
  local kinds = {"hash", "zset", "set", "zset", "hash", "zset", "hash", "hash", "zset", "hash", "zset", "zset", "hash"}
  end_what_is_due(now, time[1], due_leases, due_cool_downs, due_items, kinds)
  waiting = redis.call("ZCARD", scores)
end
if waiting == 0 then
  local soon = next_due()
  return soon and {soon - now} or {}
end
-- (one EXISTS says whether the item may have deliveries or a failure to forget)
local counted, failed = false, false
if redis.call("EXISTS", deliveries, failures) > 0 then
  counted = expect(8, "hash") > 0
  failed = expect(13, "hash") > 0
end

-- the first write: the count (checked; taken back in the rare case that only
-- orphans were left)
checked(STATS, "hash", "HINCRBY", "pulled", 1)
local key, value
repeat
  local popped = redis.call("ZPOPMAX", scores)
  if #popped == 0 then
    redis.call("HINCRBY", KEYS[STATS], "pulled", -1)
    local soon = next_due()
    return soon and {soon - now} or {}
  end
  key = popped[1]
  value = redis.call("HGET", values, key)
until value  -- an orphan (no value) is dropped and not counted
redis.call("HDEL", values, key)
if counted then redis.call("HDEL", deliveries, key) end  -- gone for good, as acknowledged
if failed then redis.call("HDEL", failures, key) end
if gate then redis.call("SADD", gated, key) end
if at then redis.call("ZADD", cooling, at, key) end
return {key, value}
