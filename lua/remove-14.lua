--[[
  Removes the given items whole, whatever their state: waiting (NAME:s),
  delayed (NAME:delayed), held by a lease (NAME:held: the holding token's ack,
  release and extend skip it from now on, and it never comes back when the
  lease runs out; a lease left holding nothing is forgotten at once) or dead
  (NAME:dead); with each its value, its deliveries and its last failure. A key that is none of
  those (only gated or cooling down, or unknown) is not counted. The
  acknowledgement of a pull that kept its items, and how an operator takes an
  item out for good. Under a max_held, leases blocked on it are woken for
  every held item removed (includes/flow.lua).

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:exc     set: gated keys
  KEYS[4]  NAME:held    hash: held item key -> the token holding it
  KEYS[5]  NAME:dlv     hash: item key -> deliveries so far, while not held
  KEYS[6]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[7]  NAME:stats   hash: the stream's counters (includes/counters.lua)
  KEYS[8]  NAME:delayed sorted set: delayed item key -> unix ms it becomes waiting
  KEYS[9]  NAME:dscores sorted set: delayed item key -> the score it will wait with
  KEYS[10] NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
  KEYS[11] NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[12] NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[13] NAME:limits  hash: flow control (includes/flow.lua)
  KEYS[14] NAME:wake    list: wake-up tokens for blocked pullers (includes/wake.lua)
-- @keys values scores gated held deliveries dead stats delayed delayed_scores failures leases lease limits wake

  ARGV[1]  "1": gate the given keys (add them to NAME:exc)
  ARGV[2]  "1": a dry run: count what would be removed, write nothing
  ARGV[3]  "1": the stream's name is registered (see below)
  ARGV[4..] item keys, each once

  Returns the number of items removed (or, in a dry run, that would be);
  counts them. Gating keys of a stream that holds nothing would create it:
  as an add does (add-13.lua), that is only done once the caller says it
  registered the name (ARGV[3]); else nothing is written and the reply is -1.
]]
-- @include batch
-- @include keycheck
-- @include wake
-- @include flow

local gate, dry = ARGV[1] == "1", ARGV[2] == "1"
local keys = {}
for i = 4, #ARGV do keys[#keys + 1] = ARGV[i] end
if #keys == 0 then return 0 end

-- every key is read before the first write; the lease keys only when they exist
expect(scores, "zset")
local waiting = call_in_slices("ZMSCORE", scores, keys)
local holders = expect(held, "hash") > 0 and call_in_slices("HMGET", held, keys)
local died = expect(dead, "zset") > 0 and call_in_slices("ZMSCORE", dead, keys)
local later = expect(delayed, "zset") > 0 and call_in_slices("ZMSCORE", delayed, keys)
local removed = 0
for i = 1, #keys do
  if waiting[i] or holders and holders[i] or died and died[i] or later and later[i] then removed = removed + 1 end
end
if dry then return removed end
if gate and ARGV[3] ~= "1" and redis.call("EXISTS", values, scores, gated, held, dead, delayed) == 0 then
  return -1  -- would create the stream: its name is registered first
end
expect(values, "hash")
if gate then expect(gated, "set") end
local counted = expect(deliveries, "hash") > 0
expect(stats, "hash")
expect(delayed_scores, "zset")
local failed = expect(failures, "hash") > 0
-- the leases of held items removed, and their records: each is forgotten once it holds nothing more
local tokens, records, freed, queued = {}, {}, 0, nil
if holders then
  local seen = {}
  for i = 1, #keys do
    local token = holders[i]
    if token then freed = freed + 1 end
    if token and not seen[token] then
      seen[token] = true
      tokens[#tokens + 1] = token
    end
  end
  if #tokens > 0 then
    expect(leases, "zset")
    records = checked(lease, "hash", "HMGET", unpack(tokens))  -- (a chunk's keys at most: 1000)
    queued = capped_wake(flow_limits(limits), wake)
  end
end

count_in_slices("ZREM", scores, keys)
count_in_slices("HDEL", values, keys)
if holders then count_in_slices("HDEL", held, keys) end
for i, token in ipairs(tokens) do
  local left = false
  if records[i] then
    local record = cmsgpack.unpack(records[i])
    local named = {}
    for j = 2, #record, 3 do named[#named + 1] = record[j] end
    for _, holder in ipairs(call_in_slices("HMGET", held, named)) do
      if holder == token then
        left = true
        break
      end
    end
  end
  if not left then
    redis.call("ZREM", leases, token)
    redis.call("HDEL", lease, token)
  end
end
if died then count_in_slices("ZREM", dead, keys) end
if later then
  count_in_slices("ZREM", delayed, keys)
  count_in_slices("ZREM", delayed_scores, keys)
end
if counted then count_in_slices("HDEL", deliveries, keys) end
if failed then count_in_slices("HDEL", failures, keys) end
if gate then count_in_slices("SADD", gated, keys) end
if removed > 0 then redis.call("HINCRBY", stats, "removed", removed) end
if queued then wake_pullers(wake, freed, queued) end
return removed
