--[[
  Acknowledges held items of one lease and leases the next items under a new
  token, in one call (as BullMQ's moveToFinished fetches the next job): what
  ack-10.lua then lease-13.lua would do (includes/acking.lua,
  includes/leasing.lua), atomically. Every key is read before the first
  write: those of the lease and what is due first, then those the
  acknowledgement writes, and, when anything is due, every key. Flow control
  limits what it leases, counted after the acknowledgement (includes/flow.lua);
  under a max_held, leases blocked on it are woken for the held items it
  frees without leasing again.

  KEYS[1]  NAME:t       hash: item key -> value
  KEYS[2]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[3]  NAME:exc     set: gated keys
  KEYS[4]  NAME:exp     sorted set: cooling-down key -> unix time
  KEYS[5]  NAME:held    hash: held item key -> the token holding it
  KEYS[6]  NAME:leases  sorted set: token -> deadline (unix ms, server clock)
  KEYS[7]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[8]  NAME:dlv     hash: item key -> deliveries (leases) so far, while not held
  KEYS[9]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[10] NAME:stats   hash: the stream's counters (includes/counters.lua)
  KEYS[11] NAME:delayed sorted set: delayed item key -> unix ms it becomes waiting
  KEYS[12] NAME:dscores sorted set: delayed item key -> the score it will wait with
  KEYS[13] NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
  KEYS[14] NAME:limits hash: flow control (includes/flow.lua)
  KEYS[15] NAME:wake    list: wake-up tokens for blocked pullers (includes/wake.lua)
-- @keys values scores gated cooling held leases lease deliveries dead stats delayed delayed_scores failures limits wake

  ARGV[1]  the token of the items acknowledged
  ARGV[2]  "1": gate the keys acknowledged (add them to NAME:exc)
  ARGV[3]  their cool-down: "none", "in" or "at" (see includes/cooldown.lua)
  ARGV[4]  seconds (see ARGV[3])
  ARGV[5]  how many items to lease, 1 to 1000
  ARGV[6]  the new lease's token (random hex, made by the caller)
  ARGV[7]  the new lease's length in ms
  ARGV[8]  its max_deliveries (0: no limit)
  ARGV[9]  "all": acknowledge every key ARGV[1] holds; "keys": the keys in ARGV[10..]

  Returns {acked, deadline, keys, values, scores, deliveries}: how many items
  were acknowledged, then what lease-13.lua returns for a lease; only
  {acked} when nothing was leased.
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include cooldown
-- @include reclaim
-- @include counters
-- @include due
-- @include acking
-- @include leasing
-- @include wake
-- @include flow

local token, gate = ARGV[1], ARGV[2] == "1"
local wanted = nil
if ARGV[9] == "keys" then
  wanted = {}
  for i = 10, #ARGV do wanted[#wanted + 1] = ARGV[i] end
end
local now, seconds = clock()  -- one TIME for both
local at = cool_down_end(ARGV[3], ARGV[4], seconds)

local due_leases, due_cool_downs, due_items =
  lease_reads(values, scores, held, lease, deliveries, stats, leases, cooling, delayed, now, seconds)
local flow = flow_limits(limits)
local shift = flow_shift(flow, now)  -- aging's (includes/aging.lua)
local acked, mine, others, failed, queued = 0, nil, nil, nil, nil
if not wanted or #wanted > 0 then
  mine, others, failed = ack_reads(held, leases, lease, gated, cooling, failures, stats, token, wanted, now, gate, at)
end
if mine and #mine > 0 then queued = capped_wake(flow, wake) end
if mine then
  -- a cool-down that has ended already (expire_at in the past) is due for
  -- the lease, as it would be for a lease after the acknowledgement
  if at and #mine > 0 and tonumber(at) <= math.floor(seconds) then due_cool_downs = true end
  if due_leases or due_cool_downs or due_items then
    -- (end_what_is_due checks every key, but after the acknowledgement's writes)
    for key, kind in pairs(kinds_by_key()) do expect(key, kind) end
  end
  acked = ack_writes(values, held, leases, lease, gated, cooling, failures, stats, token, mine, others, failed, gate, at)
end

if due_leases or due_cool_downs or due_items then
  end_what_is_due(keys_by_name(), kinds_by_key(), now, math.floor(seconds), shift, due_leases, due_cool_downs, due_items)
end
local count, tokens = tonumber(ARGV[5]), nil
if flow then
  local wait  -- (never waits)
  count, wait, tokens = allowance(flow, held, leases, now, count)
end
local leased = count > 0 and take_and_hold(values, scores, held, leases, lease, deliveries, stats,
  count, ARGV[6], now, tonumber(ARGV[7]), tonumber(ARGV[8]), shift)
if queued then wake_pullers(wake, acked - (leased and #leased[2] or 0), queued) end
if not leased then return {acked} end
spend(limits, tokens, now, #leased[2])
return {acked, leased[1], leased[2], leased[3], leased[4], leased[5]}
