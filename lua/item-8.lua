--[[
  Where an item stands (SPEC §8): held, dead, waiting, cooling down, gated or
  absent, with what applies. Writes nothing.

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:exc     set: gated keys
  KEYS[3]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[4]  NAME:held    hash: held item key -> the token holding it
  KEYS[5]  NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[6]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[7]  NAME:dlv     hash: item key -> deliveries so far, while not held
  KEYS[8]  NAME:dead    sorted set: dead item key -> its last score

  ARGV[1]  the item's key

  Returns {state, score, deliveries, lease_deadline, cool_down_end, gated}:
  state "held", "dead", "waiting", "cooling", "gated" or "absent" (the first
  that applies, in that order); score (exact text: the one it had when leased,
  its last, or its current one), deliveries, the lease's deadline (unix ms),
  the cool-down's end (unix seconds): each false where it does not apply;
  gated 1 or 0.
]]
-- @include keycheck

local key = ARGV[1]
local state, score, deliveries, deadline = nil, false, false, false
local holder = checked(4, "hash", "HGET", key)
if holder then
  local packed = checked(6, "hash", "HGET", holder)
  if packed then
    local record = cmsgpack.unpack(packed)
    for i = 2, #record, 3 do
      if record[i] == key then
        score, deliveries = record[i + 1], record[i + 2]
        break
      end
    end
  end
  deadline = checked(5, "zset", "ZSCORE", holder) or false
  state = "held"
end
if not state then
  local last = checked(8, "zset", "ZSCORE", key)
  if last then
    state, score = "dead", last
  else
    local current = checked(1, "zset", "ZSCORE", key)
    if current then state, score = "waiting", current end
  end
  if state then deliveries = tonumber(checked(7, "hash", "HGET", key) or 0) end
end
local ends = checked(3, "zset", "ZSCORE", key) or false
local gated = checked(2, "set", "SISMEMBER", key)
if not state then
  state = ends and "cooling" or gated == 1 and "gated" or "absent"
end
return {state, score, deliveries, deadline, ends, gated}
