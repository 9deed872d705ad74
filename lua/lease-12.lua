--[[
  Takes up to ARGV[1] of the highest-scored items, like pull-13.lua, but holds
  them under a token until a deadline instead of removing them: a held item is
  in no one else's pull, its value stays in NAME:t, and NAME:held remembers
  which token holds it, and the lease's record (NAME:lease) the score it had
  and its deliveries (includes/holding.lua). What is due comes first, as in
  pull-13.lua. (leaseone-12.lua does the same for one item.)

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[4]  NAME:held    hash: held item key -> the token holding it
  KEYS[5]  NAME:leases  sorted set: token -> deadline (unix ms, server clock)
  KEYS[6]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[7]  NAME:dlv     hash: item key -> deliveries (leases) so far, while not held
  KEYS[8]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[9]  NAME:stats   hash: the stream's counters (includes/counters.lua)
  KEYS[10] NAME:delayed sorted set: delayed item key -> unix ms it becomes waiting
  KEYS[11] NAME:dscores sorted set: delayed item key -> the score it will wait with
  KEYS[12] NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
-- @keys values scores cooling held leases lease deliveries dead stats delayed delayed_scores failures

  ARGV[1]  count, 1 to 1000
  ARGV[2]  the lease's token (random hex, made by the caller)
  ARGV[3]  the lease's length in ms
  ARGV[4]  max_deliveries (0: no limit)

  Returns {deadline, keys, values, scores, deliveries}: the deadline (unix ms)
  and four arrays in pull order, but deliveries is empty when every item is
  on its first; when nothing was leased, {} or, while delayed items wait,
  {ms}: how long until the next is due.
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include reclaim
-- @include counters
-- @include due

local count, token = tonumber(ARGV[1]), ARGV[2]
expect(values, "hash")
expect(scores, "zset")
expect(held, "hash")
expect(lease, "hash")
expect(deliveries, "hash")
expect(stats, "hash")
local now, seconds = clock()
-- what is due comes first: every key is read (and checked) only when something is
local due_leases = #checked(leases, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
local due_cool_downs = #checked(cooling, "zset", "ZRANGEBYSCORE", "-inf", math.floor(seconds), "LIMIT", 0, 1) > 0
local due_items = #checked(delayed, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
if due_leases or due_cool_downs or due_items then
  end_what_is_due(keys_by_name(), kinds_by_key(), now, math.floor(seconds), due_leases, due_cool_downs, due_items)
end

local taken, found, remembered = {}, {}, {}
while #taken < count do
  local want = count - #taken
  local page = redis.call("ZPOPMAX", scores, want)  -- (every key was checked: a write may come first)
  if #page == 0 then break end
  local members = {}
  for i = 1, #page, 2 do members[#members + 1] = page[i] end
  local got = redis.call("HMGET", values, unpack(members))  -- (1000 at most)
  for i, key in ipairs(members) do
    if got[i] then
      taken[#taken + 1] = key
      found[#found + 1] = got[i]
      remembered[#remembered + 1] = page[2 * i]
    end  -- (a score with no value was popped with the rest: dropped, not counted)
  end
  if #page / 2 < want then break end
end
if #taken == 0 then
  local soon = next_due(keys_by_name())
  return soon and {soon - now} or {}
end

-- deliveries so far: NAME:dlv has those of items leased before (and given
-- back), which move into NAME:held while the item is held
local counts = nil
if redis.call("EXISTS", deliveries) == 1 then
  counts = redis.call("HMGET", deliveries, unpack(taken))
  local known = {}
  for i, key in ipairs(taken) do
    if counts[i] then known[#known + 1] = key end
    counts[i] = tonumber(counts[i] or 0) + 1
  end
  if #known > 0 then redis.call("HDEL", deliveries, unpack(known)) end
end
local owned, record = {}, {tonumber(ARGV[4])}
for i, key in ipairs(taken) do
  owned[2 * i - 1], owned[2 * i] = key, token
  record[3 * i - 1], record[3 * i], record[3 * i + 1] = key, remembered[i], counts and counts[i] or 1
end
redis.call("HSET", held, unpack(owned))  -- (2000 arguments at most: within unpack's limit)
local deadline = now + tonumber(ARGV[3])
redis.call("ZADD", leases, deadline, token)
redis.call("HSET", lease, token, cmsgpack.pack(record))
redis.call("HINCRBY", stats, "leased", #taken)
return {deadline, taken, found, remembered, counts or {}}
