--[[
  Adds items to a stream, or adds to the scores of items already there, unless
  the key is gated or cooling down. (addone-8.lua does the same for one item.)

  KEYS[1]  NAME:t    hash: item key -> value
  KEYS[2]  NAME:s    sorted set: item key -> score
  KEYS[3]  NAME:exc  set: gated keys
  KEYS[4]  NAME:exp  sorted set: cooling-down key -> unix time
  KEYS[5]  NAME:wake list: wake-up tokens for blocked pullers (includes/wake.lua)
  KEYS[6]  NAME:held hash: held item key -> the token holding it
  KEYS[7]  NAME:dead sorted set: dead item key -> its last score
  KEYS[8]  NAME:stats hash: the stream's counters (includes/counters.lua)

  ARGV[1]  "1": re-add, clearing the gate and the cool-down of each key first
  ARGV[2]  "1": the caller has registered the stream's name in :ps:keys. A
           stream is only ever created after its name was registered, so that
           a lost connection can never leave a stream that holds data out of
           the registry (and out of psexpire).
  ARGV[3]  "1": replace: each score is set to the one given, not added to
  ARGV[4..] triples: item key, value, score increment (the exact decimal text
           of a finite double, never "-0.0"); with ARGV[3], the score itself

  Returns an array: [1] 1 when none of the stream's keys existed before this
  call, else 0; or 2, and nothing else, when the stream does not exist and
  ARGV[2] is not "1": nothing was written. Then only the exceptions, as pairs:
  the item's index (from 1) and its new score ("%.17g" text, exact), or why
  it was refused: "held" (by a lease), "dead", "gated" or "cooling" (readd
  lifts a gate and a cool-down, never a lease; a key refused for several
  reasons gives the first of these). An item not listed was a new key: its
  new score is its increment (with ARGV[3], no item is listed but the
  refused ones). Counts added, updated and refused items. Duplicated keys are
  applied in order: values overwrite, increments add up (with ARGV[3], the
  last score wins). A score that would not be finite fails the whole call
  before anything is written.
]]
local values, scores, gated, cooling, wakes, held, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local STATS = 8
-- @include batch
-- @include keycheck
-- @include score
-- @include wake
-- @include counters

local readd = ARGV[1] == "1"
local replace = ARGV[3] == "1"
local count = (#ARGV - 3) / 3
local born = redis.call("EXISTS", values, scores, gated, cooling) == 0
if born and ARGV[2] ~= "1" then return {2} end
local reply = {born and 1 or 0}
if count == 0 then return reply end

local keys = {}
for i = 1, count do keys[i] = ARGV[3 * i + 1] end

-- every key is read before the first write
local refused, current = {}, {}
if not born then
  expect(1, "hash")
  local has_gates = redis.call("EXISTS", gated) == 1
  local has_cool_downs = redis.call("EXISTS", cooling) == 1
  if readd then
    if has_gates then expect(3, "set") end
    if has_cool_downs then expect(4, "zset") end
  else
    if has_gates then
      expect(3, "set")
      local is_gated = call_in_slices("SMISMEMBER", gated, keys)
      for i = 1, count do
        if is_gated[i] == 1 then refused[i] = "gated" end
      end
    end
    if has_cool_downs then
      expect(4, "zset")
      local cooldown = call_in_slices("ZMSCORE", cooling, keys)
      for i = 1, count do
        if cooldown[i] and not refused[i] then refused[i] = "cooling" end
      end
    end
  end
  if redis.call("EXISTS", held) == 1 then
    expect(6, "hash")
    local is_held = call_in_slices("HMGET", held, keys)
    for i = 1, count do
      if is_held[i] then refused[i] = "held" end
    end
  end
  if redis.call("EXISTS", dead) == 1 then
    expect(7, "zset")
    local is_dead = call_in_slices("ZMSCORE", dead, keys)
    for i = 1, count do
      if is_dead[i] and refused[i] ~= "held" then refused[i] = "dead" end
    end
  end
  expect(2, "zset")
  current = call_in_slices("ZMSCORE", scores, keys)
end
local queued = checked(5, "list", "LLEN")

-- HSET and ZADD apply repeated fields in order, the last one winning: so each
-- occurrence of a key carries its running score and the last is the total
local running = {}  -- item key -> its score so far in this call, as text
local hash_pairs, zset_pairs, n = {}, {}, 0
local updated, refusals = 0, 0
for i = 1, count do
  if refused[i] then
    reply[#reply + 1] = i
    reply[#reply + 1] = refused[i]
    refusals = refusals + 1
  else
    local key = keys[i]
    local increment = ARGV[3 * i + 3]
    local base = running[key] or current[i]
    local score = increment
    if base then
      if not replace then
        score = finite_score(tonumber(base) + tonumber(increment), key)
        reply[#reply + 1] = i
        reply[#reply + 1] = score
      end
      updated = updated + 1
    end
    running[key] = score
    hash_pairs[n + 1], hash_pairs[n + 2] = key, ARGV[3 * i + 2]
    zset_pairs[n + 1], zset_pairs[n + 2] = score, key
    n = n + 2
  end
end

-- the first write: the counters
tally(STATS, "added", n / 2 - updated, "updated", updated, "refused", refusals)
if readd and not born then  -- the gates and cool-downs of the keys not refused
  local lifted = {}
  for i = 1, count do
    if not refused[i] then lifted[#lifted + 1] = keys[i] end
  end
  count_in_slices("SREM", gated, lifted)
  count_in_slices("ZREM", cooling, lifted)
end
if n > 0 then
  count_in_slices("HSET", values, hash_pairs)
  count_in_slices("ZADD", scores, zset_pairs)
  wake(wakes, n / 2, queued)
end
return reply
