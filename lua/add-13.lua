--[[
  Adds items to a stream, or adds to the scores of items already there, unless
  the key is held, dead, gated or cooling down; an item may be delayed: kept
  now, waiting only from a given time. (addone-13.lua does the same for one
  item.) A cool-down whose time has come is over: the key is treated as
  psexpire would (it leaves NAME:exp; a kept item leaves with it), then added.

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

  ARGV[1]  "1": re-add, clearing the gate and the cool-down of each key first
  ARGV[2]  "1": the caller has registered the stream's name in :ps:keys. A
           stream is only ever created after its name was registered, so that
           a lost connection can never leave a stream that holds data out of
           the registry (and out of psexpire).
  ARGV[3]  "1": replace: each score is set to the one given, not added to
  ARGV[4]  when the items start waiting, for those that give no time of their
           own: "" (now; a delayed key keeps its time), "+N" (N ms from the
           server's clock) or "N" (unix ms)
  ARGV[5]  fields per item: "3", or "4" with a time of its own (as ARGV[4])
  ARGV[6..] the items: item key, value, score increment (the exact decimal
           text of a finite double, never "-0.0"; with ARGV[3], the score
           itself)[, time]

  Returns an array: [1] 1 when none of the stream's keys existed before this
  call, else 0; or 2, and nothing else, when the stream does not exist and
  ARGV[2] is not "1": nothing was written. Then only the exceptions, as pairs:
  the item's index (from 1) and its new score ("%.17g" text, exact; scores
  given and replied are effective, includes/aging.lua), or why
  it was refused: "held" (by a lease), "dead", "gated" or "cooling" (readd
  lifts a gate and a cool-down, never a lease; a key refused for several
  reasons gives the first of these). An item not listed was a new key: its
  new score is its increment (with ARGV[3], no item is listed but the
  refused ones). Counts added, updated and refused items, and the cool-downs
  it ended. Duplicated keys are applied in order: values overwrite,
  increments add up (with ARGV[3], the last score wins), a later time wins.
  A time that has come means now. A score that would not be finite fails the
  whole call before anything is written.
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include score
-- @include wake
-- @include counters
-- @include aging

local readd = ARGV[1] == "1"
local replace = ARGV[3] == "1"
local width = tonumber(ARGV[5])
local first = 6
local count = (#ARGV - first + 1) / width
local born = redis.call("EXISTS", values, scores, gated, cooling, delayed) == 0
if born and ARGV[2] ~= "1" then return {2} end
local reply = {born and 1 or 0}
if count == 0 then return reply end

local now, seconds = clock()
local shift = aging_shift(limits, now)  -- (read before the first write)
-- a time as the caller gives it, as unix ms; nil for none
local function moment(text)
  if text == nil or text == "" then return nil end
  if string.sub(text, 1, 1) == "+" then return now + tonumber(string.sub(text, 2)) end
  return tonumber(text)
end
local default_time = moment(ARGV[4])

local keys = {}
for i = 1, count do keys[i] = ARGV[first + (i - 1) * width] end

-- every key is read (and checked) before the first write
local refused, current, later, ended = {}, {}, {}, {}
if not born then
  for key, kind in pairs(kinds_by_key()) do expect(key, kind) end
  local has_gates = redis.call("EXISTS", gated) == 1
  local has_cool_downs = redis.call("EXISTS", cooling) == 1
  if not readd then
    if has_gates then
      local is_gated = call_in_slices("SMISMEMBER", gated, keys)
      for i = 1, count do
        if is_gated[i] == 1 then refused[i] = "gated" end
      end
    end
    if has_cool_downs then
      local cooldown = call_in_slices("ZMSCORE", cooling, keys)
      for i = 1, count do
        if cooldown[i] and not refused[i] then
          if tonumber(cooldown[i]) > math.floor(seconds) then
            refused[i] = "cooling"
          else
            ended[keys[i]] = true  -- its time has come: over, as psexpire would have it
          end
        end
      end
    end
  end
  if redis.call("EXISTS", held) == 1 then
    local is_held = call_in_slices("HMGET", held, keys)
    for i = 1, count do
      if is_held[i] then refused[i] = "held" end
    end
  end
  if redis.call("EXISTS", dead) == 1 then
    local is_dead = call_in_slices("ZMSCORE", dead, keys)
    for i = 1, count do
      if is_dead[i] and refused[i] ~= "held" then refused[i] = "dead" end
    end
  end
  current = call_in_slices("ZMSCORE", scores, keys)
  if shift ~= 0 then
    for i = 1, count do current[i] = effective(current[i], shift) end
  end
  if redis.call("EXISTS", delayed) == 1 then
    later = call_in_slices("ZMSCORE", delayed, keys)
    local pending = call_in_slices("ZMSCORE", delayed_scores, keys)
    for i = 1, count do
      if later[i] then current[i] = pending[i] or 0 end  -- a delayed item's score is the one it will wait with
    end
  end
end
local queued = checked(wake, "list", "LLEN")

if width == 3 and not default_time and not next(later) and not next(ended) then
  -- no delay anywhere (the common add): each occurrence of a key carries its
  -- running score, and HSET and ZADD apply repeated fields in order, the last
  -- one winning, so the last is the total
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
      local at = first + (i - 1) * 3
      local increment = ARGV[at + 2]
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
      hash_pairs[n + 1], hash_pairs[n + 2] = key, ARGV[at + 1]
      zset_pairs[n + 1], zset_pairs[n + 2] = stored(score, shift), key
      n = n + 2
    end
  end
  tally(stats, "added", n / 2 - updated, "updated", updated, "refused", refusals)  -- the first write
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
    wake_pullers(wake, n / 2, queued)
  end
  return reply
end

-- with delays: each key's state after the call: the last occurrence of a key wins its
-- value, the running sum its score, the last time given its time
local final, order = {}, {}
local accepted, updated, refusals = 0, 0, 0
local dropped = {}  -- kept items whose cool-down is over: gone before they are added again
for i = 1, count do
  local key = keys[i]
  if refused[i] then
    reply[#reply + 1] = i
    reply[#reply + 1] = refused[i]
    refusals = refusals + 1
  else
    local at = first + (i - 1) * width
    local increment = ARGV[at + 2]
    local state = final[key]
    if not state then
      state = {was_waiting = current[i] ~= nil and not later[i], was_delayed = later[i] ~= nil,
               due = later[i] and tonumber(later[i]) or nil, score = current[i]}
      if ended[key] then
        if state.was_waiting then
          dropped[#dropped + 1] = key
          state.was_waiting, state.score = false, nil
        end
      end
      final[key] = state
      order[#order + 1] = key
    end
    accepted = accepted + 1
    local score = increment
    if state.score then
      if not replace then
        score = finite_score(tonumber(state.score) + tonumber(increment), key)
        reply[#reply + 1] = i
        reply[#reply + 1] = score
      end
      updated = updated + 1
    end
    state.score, state.value = score, ARGV[at + 1]
    local given = width == 4 and moment(ARGV[at + 3]) or default_time
    if given then state.due = given end
  end
end

local over = {}
for key in pairs(ended) do over[#over + 1] = key end

-- the first write: the counters
tally(stats, "added", accepted - updated, "updated", updated, "refused", refusals, "expired", #over)
if readd and not born then  -- the gates and cool-downs of the keys not refused
  count_in_slices("SREM", gated, order)
  count_in_slices("ZREM", cooling, order)
end
count_in_slices("ZREM", cooling, over)
if #dropped > 0 then
  count_in_slices("ZREM", scores, dropped)
  count_in_slices("HDEL", deliveries, dropped)
  count_in_slices("HDEL", failures, dropped)
end
local hash_pairs, waiting_pairs, later_pairs, later_scores = {}, {}, {}, {}
local leave_waiting, leave_delayed = {}, {}
for _, key in ipairs(order) do
  local state = final[key]
  hash_pairs[#hash_pairs + 1] = key
  hash_pairs[#hash_pairs + 1] = state.value
  if state.due and state.due > now then
    later_pairs[#later_pairs + 1] = state.due
    later_pairs[#later_pairs + 1] = key
    later_scores[#later_scores + 1] = state.score
    later_scores[#later_scores + 1] = key
    if state.was_waiting then leave_waiting[#leave_waiting + 1] = key end
  else
    waiting_pairs[#waiting_pairs + 1] = stored(state.score, shift)
    waiting_pairs[#waiting_pairs + 1] = key
    if state.was_delayed then leave_delayed[#leave_delayed + 1] = key end
  end
end
if #order > 0 then
  count_in_slices("HSET", values, hash_pairs)
  count_in_slices("ZADD", scores, waiting_pairs)
  count_in_slices("ZREM", scores, leave_waiting)
  count_in_slices("ZADD", delayed, later_pairs)
  count_in_slices("ZADD", delayed_scores, later_scores)
  count_in_slices("ZREM", delayed, leave_delayed)
  count_in_slices("ZREM", delayed_scores, leave_delayed)
  wake_pullers(wake, #order, queued)
end
return reply
