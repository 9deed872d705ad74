-- What is due by the server's clock ends inside the calls that hand items
-- out, whoever runs cron: at most DUE delayed items become waiting and at
-- most DUE cool-downs end per call (psexpire: its own limit), in a few bulk
-- commands, so that a pile of due entries never makes one call long (the rest
-- end in the next calls, and psexpire ends them all). `K`: the script's keys
-- by name (its keys_by_name()), checked before any write (end_what_is_due
-- checks them all, `kinds` being its kinds_by_key()). An item goes back into
-- NAME:s by aging's `shift` (includes/aging.lua).
-- @include batch
-- @include keycheck
-- @include reclaim
-- @include counters
local DUE = 500

-- Delayed items whose time has come (unix ms `now`) wait from now on, with
-- the score they were given. Returns how many, and whether more may be due.
local function promote(K, now, shift, limit)
  limit = limit or DUE
  local keys = redis.call("ZRANGEBYSCORE", K.delayed, "-inf", now, "LIMIT", 0, limit)
  if #keys == 0 then return 0, false end
  local scored = call_in_slices("ZMSCORE", K.delayed_scores, keys)
  local back = {}
  for i, key in ipairs(keys) do
    back[2 * i - 1] = stored(scored[i] or 0, shift)
    back[2 * i] = key
  end
  count_in_slices("ZADD", K.scores, back)
  count_in_slices("ZREM", K.delayed, keys)
  count_in_slices("ZREM", K.delayed_scores, keys)
  return #keys, #keys == limit
end

-- Cool-downs whose time has come (unix seconds `now`) end: the key leaves
-- NAME:exp, and its value and score (SPEC §1: a kept item, whose pull was
-- never acknowledged) leave with it, with every record the item has; but an
-- item a lease holds, a dead or a delayed one only loses its cool-down: their
-- value is still needed. Returns how many cool-downs ended, and whether more
-- may be due.
local function end_cool_downs(K, now, limit)
  limit = limit or DUE
  local due = redis.call("ZRANGEBYSCORE", K.cooling, "-inf", now, "LIMIT", 0, limit)
  if #due == 0 then return 0, false end
  count_in_slices("ZREM", K.cooling, due)
  local gone = due
  if redis.call("EXISTS", K.held, K.dead, K.delayed) > 0 then
    local holders = call_in_slices("HMGET", K.held, due)
    local died = call_in_slices("ZMSCORE", K.dead, due)
    local later = call_in_slices("ZMSCORE", K.delayed, due)
    gone = {}
    for i, key in ipairs(due) do
      if not (holders[i] or died[i] or later[i]) then gone[#gone + 1] = key end
    end
  end
  count_in_slices("ZREM", K.scores, gone)
  count_in_slices("HDEL", K.values, gone)
  count_in_slices("HDEL", K.deliveries, gone)
  count_in_slices("HDEL", K.failures, gone)
  return #due, #due == limit
end

-- When the next delayed item is due (unix ms), or nil: a blocked pull or
-- lease that took nothing waits no longer than that.
local function next_due(K)
  local first = redis.call("ZRANGE", K.delayed, 0, 0, "WITHSCORES")
  return first[2] and tonumber(first[2]) or nil
end

-- Ends what is due, once the caller's own three reads found something is (so
-- that a call with nothing due sets none of this up): every key of the script
-- is checked first (`kinds`: each key's type), then leases that ran
-- out give their items back, cool-downs end (`seconds`: the server's clock in
-- whole unix seconds) and delayed items start waiting. Counts what it did.
local function end_what_is_due(K, kinds, now, seconds, shift, leases_due, cool_downs_due, items_due)
  for key, kind in pairs(kinds) do expect(key, kind) end
  local reclaimed = leases_due and reclaim(K, now, shift) or {0, 0}
  local expired = cool_downs_due and end_cool_downs(K, seconds) or 0
  if items_due then promote(K, now, shift) end
  tally(K.stats, "redelivered", reclaimed[1], "dead", reclaimed[2], "expired", expired)
end
