--[[
  One page of the keys in one state (SPEC §10), with what applies to each, by
  the server's clock. A listing read a page at a time is not a snapshot:
  items that change state between two pages may be missed or shown twice.
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

  ARGV[1]  the state: "waiting", "delayed", "held", "cooling", "gated" or "dead"
  ARGV[2]  where the page starts: a rank (0 first), or for "gated" a SSCAN cursor
  ARGV[3]  how many keys a page holds, about (a page of held items ends with
           the lease that reaches it)

  Returns {next, rows}: next, where the next page starts, or false after the
  last page; rows a flat array, per key:
    waiting  key, score, deliveries             (pull order)
    delayed  key, until (unix ms), score, deliveries, reason (of its last failure, a retry's)
             (soonest first; only those still to come)
    held     key, token, deadline (unix ms), score, deliveries   (earliest deadline first)
    cooling  key, until (unix ms)               (soonest first; only cool-downs still to end)
    gated    key
    dead     key, score, deliveries, reason, failed_at (unix ms)   (highest score first)
  where a reason or a time none is kept for is false. Scores are effective
  (includes/aging.lua).
]]
-- @include batch
-- @include keycheck
-- @include clock
-- @include aging

local state, start, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rows = {}
local function deliveries_of(keys)
  local counts = call_in_slices("HMGET", deliveries, keys)
  for i = 1, #keys do counts[i] = tonumber(counts[i] or 0) end
  return counts
end
local function page_end(found)
  if #found < count then return false end
  return tostring(tonumber(start) + count)
end

if state == "gated" then
  local reply = checked(gated, "set", "SSCAN", start, "COUNT", count)
  for _, key in ipairs(reply[2]) do rows[#rows + 1] = key end
  return {reply[1] ~= "0" and reply[1] or false, rows}
end

expect(deliveries, "hash")
local first, last = tonumber(start), tonumber(start) + count - 1
if state == "waiting" or state == "dead" then
  local found = checked(state == "waiting" and scores or dead, "zset", "ZREVRANGE", first, last, "WITHSCORES")
  local keys = {}
  for i = 1, #found, 2 do keys[#keys + 1] = found[i] end
  if #keys == 0 then return {false, rows} end
  if state == "waiting" then effective_pairs(found, aging_shift(limits)) end
  local counts = deliveries_of(keys)
  local reasons = {}
  if state == "dead" then
    expect(failures, "hash")
    reasons = call_in_slices("HMGET", failures, keys)
  end
  for i, key in ipairs(keys) do
    rows[#rows + 1] = key
    rows[#rows + 1] = found[2 * i]
    rows[#rows + 1] = counts[i]
    if state == "dead" then
      local failure = reasons[i] and cmsgpack.unpack(reasons[i]) or {}
      rows[#rows + 1] = failure[1] or false
      rows[#rows + 1] = failure[2] or false
    end
  end
  return {page_end(keys), rows}
end

if state == "delayed" then
  local now = clock()
  local over = checked(delayed, "zset", "ZCOUNT", "-inf", now)  -- their time has come: they wait, not listed
  local found = redis.call("ZRANGE", delayed, over + first, over + last, "WITHSCORES")
  local keys = {}
  for i = 1, #found, 2 do keys[#keys + 1] = found[i] end
  if #keys == 0 then return {false, rows} end
  expect(delayed_scores, "zset")
  expect(failures, "hash")
  local waits_with = call_in_slices("ZMSCORE", delayed_scores, keys)
  local counts = deliveries_of(keys)
  local reasons = call_in_slices("HMGET", failures, keys)
  for i, key in ipairs(keys) do
    rows[#rows + 1] = key
    rows[#rows + 1] = found[2 * i]
    rows[#rows + 1] = waits_with[i] or false
    rows[#rows + 1] = counts[i]
    rows[#rows + 1] = reasons[i] and cmsgpack.unpack(reasons[i])[1] or false  -- (a retry's: why it failed)
  end
  return {page_end(keys), rows}
end

if state == "cooling" then
  local _, seconds = clock()
  local now = math.floor(seconds)
  local over = checked(cooling, "zset", "ZCOUNT", "-inf", now)  -- ended, not yet swept: not listed
  local found = redis.call("ZRANGE", cooling, over + first, over + last, "WITHSCORES")
  for i = 1, #found, 2 do
    rows[i], rows[i + 1] = found[i], tonumber(found[i + 1]) * 1000
  end
  local following = false
  if #found / 2 == count then following = tostring(first + count) end
  return {following, rows}
end

if state == "held" then
  -- leases in deadline order, as many as reach `count` items (at least one)
  local rank, items = first, 0
  expect(held, "hash")
  expect(lease, "hash")
  while items < count do
    local tokens = checked(leases, "zset", "ZRANGE", rank, rank + 99, "WITHSCORES")
    if #tokens == 0 then return {false, rows} end
    for i = 1, #tokens, 2 do
      local token, deadline = tokens[i], tokens[i + 1]
      rank = rank + 1
      local packed = redis.call("HGET", lease, token)
      if packed then
        local record = cmsgpack.unpack(packed)
        local keys = {}
        for j = 2, #record, 3 do keys[#keys + 1] = record[j] end
        local holders = #keys > 0 and redis.call("HMGET", held, unpack(keys)) or {}
        for j, key in ipairs(keys) do
          if holders[j] == token then
            rows[#rows + 1] = key
            rows[#rows + 1] = token
            rows[#rows + 1] = deadline
            rows[#rows + 1] = record[3 * j]
            rows[#rows + 1] = record[3 * j + 1]
            items = items + 1
          end
        end
      end
      if items >= count then break end
    end
  end
  return {tostring(rank), rows}
end

return redis.error_reply("unknown state " .. string.sub(state, 1, 40))
