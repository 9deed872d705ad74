--[[
  Takes up to ARGV[1] of the highest-scored items (ties in ZPOPMAX order).
  A sorted-set entry with no value in NAME:t is an orphan: it is dropped and
  not counted. (pullone-14.lua does the same for one item, purged.) What is
  due comes first: leases that ran out give their items back
  (includes/reclaim.lua), due cool-downs end and due delayed items start
  waiting (includes/due.lua), a bounded number of each. Flow control limits
  what it takes (includes/flow.lua).

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

  ARGV[1]  count, >= 1
  ARGV[2]  "1": purge (items leave NAME:t and NAME:s); "0": keep them, below
           every item still waiting: with base = min(lowest score, 0), the
           n-th pulled item's score becomes base - n (its order among the kept
           items stays the pull order; effective scores, includes/aging.lua)
  ARGV[3]  "1": gate the pulled keys (add them to NAME:exc)
  ARGV[4]  cool-down: "none"; "in" (ARGV[5] seconds from the server's clock);
           "at" (ARGV[5] is a unix time). Stored rounded up to whole seconds.
  ARGV[5]  seconds (see ARGV[4])

  Returns {keys, values}: two arrays in pull order; when nothing was pulled,
  {} or, while delayed items wait, {ms}: how long until the next is due (a
  blocked pull waits no longer); or, by a rate limit, until the next token. A purged item's deliveries and last failure
  are forgotten. Counts the items pulled, and what came due.
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include cooldown
-- @include score
-- @include reclaim
-- @include counters
-- @include due
-- @include flow
local count = tonumber(ARGV[1])
local purge = ARGV[2] == "1"
local gate = ARGV[3] == "1"
local pulled, found = {}, {}

-- every key is read before the first write
expect(values, "hash")
expect(scores, "zset")
if gate then expect(gated, "set") end
local now, seconds = clock()
local at = cool_down_end(ARGV[4], ARGV[5], seconds)
expect(stats, "hash")
local flow = flow_limits(limits)
local shift = flow_shift(flow, now)  -- aging's (includes/aging.lua)
-- what is due comes first: every key is read (and checked) only when something is
local due_leases = #checked(leases, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
local due_cool_downs = #checked(cooling, "zset", "ZRANGEBYSCORE", "-inf", math.floor(seconds), "LIMIT", 0, 1) > 0
local due_items = #checked(delayed, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
if due_leases or due_cool_downs or due_items then
  end_what_is_due(keys_by_name(), kinds_by_key(), now, math.floor(seconds), shift, due_leases, due_cool_downs, due_items)
end
-- an item pulled for good leaves its deliveries and its last failure behind
-- (as an acknowledged one); one EXISTS says whether there is anything to forget
local counted, failed = false, false
if purge and redis.call("EXISTS", deliveries, failures) > 0 then
  counted = expect(deliveries, "hash") > 0
  failed = expect(failures, "hash") > 0
end
local tokens = nil
if flow then
  local wait
  count, wait, tokens = allowance(flow, nil, nil, now, count)
  if count == 0 then return wait and {wait} or {} end
end

-- appends a page's members that have a value; returns those that have none
local n = 0
local function take(members, got)
  local orphans = {}
  for i = 1, #members do
    local value = got[i]
    if value then
      n = n + 1
      pulled[n] = members[i]
      found[n] = value
    else
      orphans[#orphans + 1] = members[i]
    end
  end
  return orphans
end

-- the n-th score below `base` (2 ulps of base apart at least, so that even
-- huge scores stay distinct and ordered)
local function below(base, n)
  local _, exponent = math.frexp(base)
  return base - n * math.max(1, 2 ^ (exponent - 52))
end

if purge then
  while #pulled < count do
    local want = count - #pulled
    -- what ZPOPMAX would pop, in its order, without reading the scores
    local members = redis.call("ZREVRANGE", scores, 0, want - 1)
    if #members == 0 then break end
    redis.call("ZREMRANGEBYRANK", scores, -#members, -1)
    local got = call_in_slices("HMGET", values, members)
    count_in_slices("HDEL", values, members)
    take(members, got)  -- orphans were removed with the rest
    if #members < want then break end  -- the sorted set is empty
  end
else
  -- Read first, write after: rewriting scores while paging would shift ranks.
  local lowest = redis.call("ZRANGE", scores, 0, 0, "WITHSCORES")
  local base = math.min(tonumber(effective(lowest[2], shift) or 0), 0)
  local offset, rescored, orphans = 0, {}, {}
  while #pulled < count do
    local want = count - #pulled
    local page = redis.call("ZREVRANGE", scores, offset, offset + want - 1)
    if #page == 0 then break end
    offset = offset + #page
    local got = call_in_slices("HMGET", values, page)
    for _, orphan in ipairs(take(page, got)) do orphans[#orphans + 1] = orphan end
  end
  for i = 1, n do
    rescored[2 * i - 1] = stored(finite_score(below(base, i), pulled[i]), shift)
    rescored[2 * i] = pulled[i]
  end
  if #orphans > 0 then count_in_slices("ZREM", scores, orphans) end
  if #rescored > 0 then count_in_slices("ZADD", scores, rescored) end
end

if #pulled == 0 then
  local soon = next_due(keys_by_name())
  return soon and {soon - now} or {}
end
tally(stats, "pulled", #pulled)
spend(limits, tokens, now, #pulled)

if counted then count_in_slices("HDEL", deliveries, pulled) end
if failed then count_in_slices("HDEL", failures, pulled) end
if gate then count_in_slices("SADD", gated, pulled) end

if at then
  local entries = {}
  for i = 1, #pulled do
    entries[2 * i - 1] = at
    entries[2 * i] = pulled[i]
  end
  count_in_slices("ZADD", cooling, entries)
end
return {pulled, found}
