--[[
  pspull of one item, purged: the rules of pull-14.lua with the fewest server
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
  KEYS[14] NAME:limits hash: flow control (includes/flow.lua)
-- @keys values scores gated cooling held leases lease deliveries dead stats delayed delayed_scores failures limits

  ARGV[1]  "1": gate the pulled key (add it to NAME:exc)
  ARGV[2]  cool-down: "none"; "in" (ARGV[3] seconds from the server's clock);
           "at" (ARGV[3] is a unix time). Stored rounded up to whole seconds.
  ARGV[3]  seconds (see ARGV[2])

  Returns {key, value}; when nothing was pulled, {} or {ms} as pull-14.lua.
  What is due comes first (see pull-14.lua), flow control next
  (includes/flow.lua). Counts what it did.
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include cooldown
-- @include reclaim
-- @include counters
-- @include due
-- @include flow

local now, seconds = clock()  -- one TIME for the leases, what is due and the cool-down

-- every key is read before the first write
expect(values, "hash")
local waiting = expect(scores, "zset")
local gate = ARGV[1] == "1"
if gate then expect(gated, "set") end
local at = cool_down_end(ARGV[2], ARGV[3], seconds)
local flow = flow_limits(limits)
local shift = flow_shift(flow, now)  -- aging's (includes/aging.lua)
-- what is due comes first: every key is read (and checked) only when something is
local due_leases = #checked(leases, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
local due_cool_downs = #checked(cooling, "zset", "ZRANGEBYSCORE", "-inf", math.floor(seconds), "LIMIT", 0, 1) > 0
local due_items = #checked(delayed, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
if due_leases or due_cool_downs or due_items then
  end_what_is_due(keys_by_name(), kinds_by_key(), now, math.floor(seconds), shift, due_leases, due_cool_downs, due_items)
  waiting = redis.call("ZCARD", scores)
end
if waiting == 0 then
  local soon = next_due(keys_by_name())
  return soon and {soon - now} or {}
end
-- (one EXISTS says whether the item may have deliveries or a failure to forget)
local counted, failed = false, false
if redis.call("EXISTS", deliveries, failures) > 0 then
  counted = expect(deliveries, "hash") > 0
  failed = expect(failures, "hash") > 0
end
local tokens = nil
if flow then
  local allowed, wait
  allowed, wait, tokens = allowance(flow, nil, nil, now, 1)
  if allowed == 0 then return wait and {wait} or {} end
end

-- the first write: the count (checked; taken back in the rare case that only
-- orphans were left)
checked(stats, "hash", "HINCRBY", "pulled", 1)
local key, value
repeat
  local popped = redis.call("ZPOPMAX", scores)
  if #popped == 0 then
    redis.call("HINCRBY", stats, "pulled", -1)
    local soon = next_due(keys_by_name())
    return soon and {soon - now} or {}
  end
  key = popped[1]
  value = redis.call("HGET", values, key)
until value  -- an orphan (no value) is dropped and not counted
redis.call("HDEL", values, key)
spend(limits, tokens, now, 1)
if counted then redis.call("HDEL", deliveries, key) end  -- gone for good, as acknowledged
if failed then redis.call("HDEL", failures, key) end
if gate then redis.call("SADD", gated, key) end
if at then redis.call("ZADD", cooling, at, key) end
return {key, value}
