--[[
  Ends what is due by the server's clock in a stream: cool-downs (each due
  key leaves NAME:exp; a kept item, one still waiting, leaves with it, with
  its records), leases that ran out (includes/reclaim.lua) and delayed items
  (they start waiting): a bounded number of each per call (includes/due.lua),
  so that one call stays short; the caller calls again while the reply says
  there is more. Delivery counts and failures that no item can own any more
  (no value, no score, no dead item left: what older versions left behind)
  go too, so that they never keep a stream registered.

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
  KEYS[14] NAME:limits  hash: flow control; aging's shift (includes/aging.lua)
-- @keys values scores gated cooling held leases lease deliveries dead stats delayed delayed_scores failures limits

  ARGV[1]  the most cool-downs, and delayed items, to end in this call

  Returns {expired, more, alive, redelivered, died, started}: how many
  cool-downs ended; 1 when a limit was reached (more may be due); 1 when any
  of the stream's keys still exists; how many items of leases that ran out
  came back, and went to NAME:dead; how many delayed items started waiting. Counts them (NAME:stats, which alone does not
  keep a stream alive).
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include reclaim
-- @include counters
-- @include due
-- @include aging

for key, kind in pairs(kinds_by_key()) do expect(key, kind) end
local K = keys_by_name()
local now, seconds = clock()
local shift = aging_shift(limits, now)
local leased = {0, 0, 0}
if redis.call("EXISTS", leases) == 1 then leased = reclaim(K, now, shift) end
local limit = tonumber(ARGV[1])
local expired, more_cool_downs = end_cool_downs(K, math.floor(seconds), limit)
local started, more_delayed = promote(K, now, shift, limit)
tally(stats, "expired", expired, "redelivered", leased[1], "dead", leased[2])
local items = redis.call("EXISTS", values, scores, dead) > 0
if not items then redis.call("DEL", deliveries, failures) end
local alive = items or redis.call("EXISTS", gated, cooling, held, leases, lease, delayed, delayed_scores) > 0
local more = (more_cool_downs or more_delayed or leased[3] == 1) and 1 or 0
return {expired, more, alive and 1 or 0, leased[1], leased[2], started}
