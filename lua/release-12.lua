--[[
  Gives held items of a lease back: to the stream at once with their
  remembered score (or ARGV[2]), or, with a delay, as delayed items that start
  waiting once it has passed (includes/due.lua). An item whose deliveries
  have reached the lease's max_deliveries goes to NAME:dead instead (every
  item does, when ARGV[4] says so). The token loses them at once; keys it no
  longer holds are skipped (includes/holding.lua). An item that was worked
  on keeps this as its last failure: the reason given (or none), the time
  and the delivery.

  KEYS[1]  NAME:s       sorted set: item key -> score (waiting items)
  KEYS[2]  NAME:held    hash: held item key -> the token holding it
  KEYS[3]  NAME:leases  sorted set: token -> deadline (unix ms)
  KEYS[4]  NAME:lease   hash: token -> msgpack {max_deliveries, key, score, deliveries, ...}
  KEYS[5]  NAME:dlv     hash: item key -> deliveries so far, while not held
  KEYS[6]  NAME:dead    sorted set: dead item key -> its last score
  KEYS[7]  NAME:stats   hash: the stream's counters (includes/counters.lua)
  KEYS[8]  NAME:delayed sorted set: delayed item key -> unix ms it becomes waiting
  KEYS[9]  NAME:dscores sorted set: delayed item key -> the score it will wait with
  KEYS[10] NAME:fail    hash: item key -> msgpack {reason, unix ms, delivery}
  KEYS[11] NAME:wake    list: wake-up tokens for blocked pullers (includes/wake.lua)
  KEYS[12] NAME:limits  hash: flow control and aging's shift (includes/flow.lua)
-- @keys scores held leases lease deliveries dead stats delayed delayed_scores failures wake limits

  ARGV[1]  the token
  ARGV[2]  the score to come back with ("" for the remembered one; exact
           text; effective, as the remembered one, includes/aging.lua)
  ARGV[3]  the delay in ms (0: at once)
  ARGV[4]  "1": the items were worked on; "dead": they were, and go to
           NAME:dead now, whatever their deliveries and the lease's
           max_deliveries; "0": they were not (a worker that stops gives back
           what it had not started): their delivery is not counted
           (deliveries go back by one), they never go to NAME:dead, and no
           failure is kept
  ARGV[5]  "1": ARGV[6] is the reason they failed; "0": none was given
  ARGV[6]  the reason (at most 2 KiB, cut by the caller)
  ARGV[7]  "all": every key the token holds; "keys": the keys in ARGV[8..]

  Returns {released, died}: how many items the token gave back, of which how
  many went to NAME:dead; counts both. Blocked pullers are woken, so that
  they take what came back, or wait for a delayed item no longer than its
  time; under a max_held, leases blocked on it are woken for every item
  (includes/flow.lua).
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include holding
-- @include wake
-- @include flow

local token, score, delay = ARGV[1], ARGV[2], tonumber(ARGV[3])
local attempted, buried_now = ARGV[4] ~= "0", ARGV[4] == "dead"
local reason = ARGV[5] == "1" and ARGV[6] or false
local wanted = nil
if ARGV[7] == "keys" then
  wanted = {}
  for i = 8, #ARGV do wanted[#wanted + 1] = ARGV[i] end
  if #wanted == 0 then return {0, 0} end
end

-- every key is read before the first write: NAME:leases, NAME:lease and
-- NAME:held by holding(), the others here
local now = clock()
local mine, record, where, others = holding(held, leases, lease, token, wanted, now)
if not mine then return {0, 0} end
local queued, capped, shift = 0, nil, 0
if #mine > 0 then
  local kinds = kinds_by_key()
  for _, key in ipairs({scores, deliveries, dead, stats, delayed, delayed_scores, failures}) do
    expect(key, kinds[key])
  end
  queued = checked(wake, "list", "LLEN")
  local flow = flow_limits(limits)  -- one read: the cap's wake-up, aging's shift
  capped = capped_wake(flow, wake)
  shift = flow_shift(flow, now)
end
local max = record[1]
local back, buried, later, later_scores, counted, failed = {}, {}, {}, {}, {}, {}
for _, key in ipairs(mine) do
  local index = where[key]
  local last, count = record[index + 1], record[index + 2]
  if not attempted then count = count - 1 end
  local remembered = score ~= "" and score or last
  if buried_now or attempted and max > 0 and count >= max then
    buried[#buried + 1] = last
    buried[#buried + 1] = key
  elseif delay > 0 then
    later[#later + 1] = now + delay
    later[#later + 1] = key
    later_scores[#later_scores + 1] = remembered
    later_scores[#later_scores + 1] = key
  else
    back[#back + 1] = stored(remembered, shift)
    back[#back + 1] = key
  end
  if count > 0 then
    counted[#counted + 1] = key
    counted[#counted + 1] = count
  end
  if attempted then
    failed[#failed + 1] = key
    failed[#failed + 1] = cmsgpack.pack({reason, now, count})
  end
end
count_in_slices("HDEL", held, mine)
count_in_slices("HSET", deliveries, counted)
count_in_slices("ZADD", scores, back)
count_in_slices("ZADD", dead, buried)
count_in_slices("ZADD", delayed, later)
count_in_slices("ZADD", delayed_scores, later_scores)
count_in_slices("HSET", failures, failed)
if not others then forget(leases, lease, token) end
if #mine > 0 then
  redis.call("HINCRBY", stats, "released", #mine)
  if #buried > 0 then redis.call("HINCRBY", stats, "dead", #buried / 2) end
  wake_pullers(wake, capped and #mine or #mine - #buried / 2, queued)
end
return {#mine, #buried / 2}
