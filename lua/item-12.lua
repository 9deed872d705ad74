--[[
  Where an item stands (SPEC §8, §10): held, dead, delayed, waiting, cooling
  down, gated or absent, with what applies, by the server's clock: a
  cool-down whose time has come is over, and a delayed item whose time has
  come waits, whether or not a pull or psexpire has got to them yet.
  Writes nothing.

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:exc     set: gated keys
  KEYS[3]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[4]  NAME:held    hash: held item key -> the token holding it
  KEYS[5]  NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[6]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[7]  NAME:dlv     hash: item key -> deliveries so far, while not held
  KEYS[8]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[9]  NAME:delayed sorted set: delayed item key -> unix ms it becomes waiting
  KEYS[10] NAME:dscores sorted set: delayed item key -> the score it will wait with
  KEYS[11] NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
  KEYS[12] NAME:limits  hash: flow control; aging's shift (includes/aging.lua)
-- @keys scores gated cooling held leases lease deliveries dead delayed delayed_scores failures limits

  ARGV[1]  the item's key

  Returns {state, score, deliveries, lease_deadline, cool_down_end, gated,
  delayed_until, failure}: state "held", "dead", "delayed", "waiting",
  "cooling", "gated" or "absent" (the first that applies, in that order);
  score (exact text: the one it had when leased, its last, the one it will
  wait with, or its current one, effective: includes/aging.lua), deliveries, the lease's deadline (unix ms),
  the cool-down's end (unix seconds, only while it is to come), when a
  delayed item starts waiting (unix ms), its last failure {reason, unix ms,
  delivery}: each false where it does not apply; gated 1 or 0.
]]
-- @include keycheck
-- @include clock
-- @include aging

local key = ARGV[1]
local now, seconds = clock()
local state, score, delivered, deadline, later = nil, false, false, false, false
local holder = checked(held, "hash", "HGET", key)
if holder then
  local packed = checked(lease, "hash", "HGET", holder)
  if packed then
    local record = cmsgpack.unpack(packed)
    for i = 2, #record, 3 do
      if record[i] == key then
        score, delivered = record[i + 1], record[i + 2]
        break
      end
    end
  end
  deadline = checked(leases, "zset", "ZSCORE", holder) or false
  state = "held"
end
if not state then
  local last = checked(dead, "zset", "ZSCORE", key)
  if last then
    state, score = "dead", last
  else
    later = checked(delayed, "zset", "ZSCORE", key) or false
    if later and tonumber(later) <= now then
      later = false  -- its time has come: it waits, whether or not a pull has moved it yet
      state, score = "waiting", checked(delayed_scores, "zset", "ZSCORE", key) or false
    elseif later then
      state, score = "delayed", checked(delayed_scores, "zset", "ZSCORE", key) or false
    else
      local current = checked(scores, "zset", "ZSCORE", key)
      if current then state, score = "waiting", effective(current, aging_shift(limits, now)) end
    end
  end
  if state then delivered = tonumber(checked(deliveries, "hash", "HGET", key) or 0) end
end
local ends = checked(cooling, "zset", "ZSCORE", key) or false
if ends and tonumber(ends) <= math.floor(seconds) then ends = false end  -- over, not yet swept
local gated = checked(gated, "set", "SISMEMBER", key)
if not state then
  state = ends and "cooling" or gated == 1 and "gated" or "absent"
end
local failure = false
if state ~= "absent" and state ~= "cooling" and state ~= "gated" then
  local packed = checked(failures, "hash", "HGET", key)
  if packed then failure = cmsgpack.unpack(packed) end
end
return {state, score, delivered, deadline, ends, gated, later, failure}
