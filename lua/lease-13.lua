--[[
  Takes up to ARGV[1] of the highest-scored items, like pull-14.lua, but holds
  them under a token until a deadline instead of removing them
  (includes/leasing.lua). What is due comes first, as in pull-14.lua; flow
  control limits what it takes (includes/flow.lua).
  (leaseone-13.lua does the same for one item; acklease-15.lua acknowledges
  items of another lease first.)

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
  KEYS[13] NAME:limits hash: flow control (includes/flow.lua)
-- @keys values scores cooling held leases lease deliveries dead stats delayed delayed_scores failures limits

  ARGV[1]  count, 1 to 1000
  ARGV[2]  the lease's token (random hex, made by the caller)
  ARGV[3]  the lease's length in ms
  ARGV[4]  max_deliveries (0: no limit)

  Returns {deadline, keys, values, scores, deliveries}: the deadline (unix ms)
  and four arrays in pull order, but deliveries is empty when every item is
  on its first; when nothing was leased, {} or, while delayed items wait,
  {ms}: how long until the next is due (or, under a limit, until the next
  token or a lease's deadline).
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include reclaim
-- @include counters
-- @include due
-- @include leasing
-- @include flow

local count, token = tonumber(ARGV[1]), ARGV[2]
local now, seconds = clock()
-- what is due comes first: every key is read (and checked) only when something is
local due_leases, due_cool_downs, due_items =
  lease_reads(values, scores, held, lease, deliveries, stats, leases, cooling, delayed, now, seconds)
local flow = flow_limits(limits)
local shift = flow_shift(flow, now)  -- aging's (includes/aging.lua)
if due_leases or due_cool_downs or due_items then
  end_what_is_due(keys_by_name(), kinds_by_key(), now, math.floor(seconds), shift, due_leases, due_cool_downs, due_items)
end

local tokens = nil
if flow then
  local wait
  count, wait, tokens = allowance(flow, held, leases, now, count)
  if count == 0 then return wait and {wait} or {} end
end
local leased = take_and_hold(values, scores, held, leases, lease, deliveries, stats,
  count, token, now, tonumber(ARGV[3]), tonumber(ARGV[4]), shift)
if leased then
  spend(limits, tokens, now, #leased[2])
  return leased
end
local soon = next_due(keys_by_name())
return soon and {soon - now} or {}
