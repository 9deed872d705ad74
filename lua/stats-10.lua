--[[
  A stream's state and counters, read in one call (SPEC §8). Writes nothing.

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:exc     set: gated keys
  KEYS[3]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[4]  NAME:held    hash: held item key -> the token holding it
  KEYS[5]  NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[6]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[7]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[8]  NAME:stats   hash: counter -> count (includes/counters.lua)
  KEYS[9]  NAME:delayed sorted set: delayed item key -> unix ms it becomes waiting
  KEYS[10] NAME:limits  hash: flow control and aging's shift (includes/flow.lua)
-- @keys scores gated cooling held leases lease dead stats delayed limits

  ARGV[1]  the most held items (and leases) to look at for "overdue": a bound
           on this call's time

  Returns {waiting, held, overdue, overdue_capped, gated, cooling,
  next_cool_down_end, dead, top_score, bottom_score, counters, time, delayed,
  next_delayed_due, tokens, paused, rate, per_ms, burst, max_held}: counts
  (waiting includes delayed items whose time has come, delayed only those
  still to come); overdue the held items whose lease has run out
  but that have not come back yet, a lower bound when overdue_capped is 1
  (ARGV[1] items were looked at); cooling the cool-downs still to end (one
  whose time has come is over, swept or not), next_cool_down_end (unix
  seconds) the first of them; top_score and bottom_score (exact text,
  effective: includes/aging.lua);
  next_delayed_due (unix ms) when the first delayed item starts waiting;
  each false when there is none; counters as HGETALL gives them; time as
  TIME gives it; then the tokens in the rate limit's bucket now
  (includes/flow.lua's bucket(), as text; false without a rate limit) and
  the flow control as limit-3.lua replies it, aging_ms last (each false when
  not set).
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include flow

local now, seconds, time = clock()
local budget = tonumber(ARGV[1])

-- overdue: the leases that ran out (at most `budget` of them), their records
-- and the holders of their keys, each read in one bulk command
local overdue, capped = 0, 0
local tokens = checked(leases, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, budget + 1)
if #tokens > budget then
  capped = 1
  tokens[#tokens] = nil
end
if #tokens > 0 then
  local records = call_in_slices("HMGET", lease, tokens)
  local keys, owners = {}, {}
  for i, token in ipairs(tokens) do
    if records[i] then
      local record = cmsgpack.unpack(records[i])
      if record[1] == -1 then record = {} end  -- (a delayed release made by psctl 0.2: not a lease that ran out)
      if #keys + (#record - 1) / 3 > budget then
        capped = 1
        break
      end
      for j = 2, #record, 3 do
        keys[#keys + 1] = record[j]
        owners[#keys] = token
      end
    end
  end
  local holders = call_in_slices("HMGET", held, keys)
  for i = 1, #keys do
    if holders[i] == owners[i] then overdue = overdue + 1 end
  end
end

local flow = flow_limits(limits)
local shift = flow_shift(flow, now)
local function score_at(key, rank)
  local found = checked(key, "zset", "ZRANGE", rank, rank, "WITHSCORES")
  return effective(found[2], shift) or false
end

local after = string.format("(%d", math.floor(seconds))  -- cool-downs still to end
local next_end = checked(cooling, "zset", "ZRANGEBYSCORE", after, "+inf", "WITHSCORES", "LIMIT", 0, 1)
-- delayed items whose time has come wait, whether or not a pull has moved them yet
local due = checked(delayed, "zset", "ZCOUNT", "-inf", now)
local next_due = checked(delayed, "zset", "ZRANGEBYSCORE", "(" .. now, "+inf", "WITHSCORES", "LIMIT", 0, 1)
flow = flow or {}
local tokens = flow[2] and string.format("%.17g", bucket(flow, now)) or false

return {
  checked(scores, "zset", "ZCARD") + due,
  checked(held, "hash", "HLEN"),
  overdue,
  capped,
  checked(gated, "set", "SCARD"),
  checked(cooling, "zset", "ZCOUNT", after, "+inf"),
  next_end[2] or false,
  checked(dead, "zset", "ZCARD"),
  score_at(scores, -1),
  score_at(scores, 0),
  checked(stats, "hash", "HGETALL"),
  time,
  checked(delayed, "zset", "ZCARD") - due,
  next_due[2] or false,
  tokens, flow[1] or false, flow[2] or false, flow[3] or false, flow[4] or false, flow[5] or false,
  flow[8] or false,
}
