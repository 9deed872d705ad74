-- Leasing up to a count of the highest-scored items (lease-13.lua,
-- acklease-15.lua): like a pull, but they are held under a token until a
-- deadline instead of removed: a held item is in no one else's pull, its
-- value stays in NAME:t, and NAME:held remembers which token holds it, and
-- the lease's record (NAME:lease) the score it had and its deliveries
-- (includes/holding.lua). What is due comes first, as in pull-14.lua: the
-- script ends it (includes/due.lua) between the two steps here.
-- @include keycheck
-- @include aging

-- lease_reads(values, scores, held, lease, deliveries, stats, leases,
-- cooling, delayed, now, seconds): checks the keys every lease writes, and
-- reads (checking them too) whether anything is due by the server's clock
-- (`now`, unix ms; `seconds`, unix seconds): a lease that ran out, a
-- cool-down that ended, a delayed item that waits from now on. Returns those
-- three answers; every other key is read only when one is true.
local function lease_reads(values, scores, held, lease, deliveries, stats, leases, cooling, delayed, now, seconds)
  expect(values, "hash")
  expect(scores, "zset")
  expect(held, "hash")
  expect(lease, "hash")
  expect(deliveries, "hash")
  expect(stats, "hash")
  local due_leases = #checked(leases, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
  local due_cool_downs = #checked(cooling, "zset", "ZRANGEBYSCORE", "-inf", math.floor(seconds), "LIMIT", 0, 1) > 0
  local due_items = #checked(delayed, "zset", "ZRANGEBYSCORE", "-inf", now, "LIMIT", 0, 1) > 0
  return due_leases, due_cool_downs, due_items
end

-- take_and_hold(values, scores, held, leases, lease, deliveries, stats,
-- count, token, now, length, max_deliveries, shift): takes up to `count` (1
-- to 1000) of the highest-scored items and holds them under `token` for
-- `length` ms from `now`; every key was read by lease_reads. A score is
-- remembered and replied effective (aging's `shift`, includes/aging.lua).
-- Returns
-- {deadline, keys, values, scores, deliveries}: the deadline (unix ms) and
-- four arrays in pull order, but deliveries is empty when every item is on
-- its first; nil when nothing was waiting.
local function take_and_hold(values, scores, held, leases, lease, deliveries, stats, count, token, now, length, max_deliveries, shift)
  local taken, found, remembered = {}, {}, {}
  while #taken < count do
    local want = count - #taken
    local page = redis.call("ZPOPMAX", scores, want)  -- (every key was checked: a write may come first)
    if #page == 0 then break end
    local members = {}
    for i = 1, #page, 2 do members[#members + 1] = page[i] end
    local got = redis.call("HMGET", values, unpack(members))  -- (1000 at most)
    for i, key in ipairs(members) do
      if got[i] then
        taken[#taken + 1] = key
        found[#found + 1] = got[i]
        remembered[#remembered + 1] = effective(page[2 * i], shift)
      end  -- (a score with no value was popped with the rest: dropped, not counted)
    end
    if #page / 2 < want then break end
  end
  if #taken == 0 then return nil end

  -- deliveries so far: NAME:dlv has those of items leased before (and given
  -- back), which move into NAME:held while the item is held
  local counts = nil
  if redis.call("EXISTS", deliveries) == 1 then
    counts = redis.call("HMGET", deliveries, unpack(taken))
    local known = {}
    for i, key in ipairs(taken) do
      if counts[i] then known[#known + 1] = key end
      counts[i] = tonumber(counts[i] or 0) + 1
    end
    if #known > 0 then redis.call("HDEL", deliveries, unpack(known)) end
  end
  local owned, record = {}, {max_deliveries}
  for i, key in ipairs(taken) do
    owned[2 * i - 1], owned[2 * i] = key, token
    record[3 * i - 1], record[3 * i], record[3 * i + 1] = key, remembered[i], counts and counts[i] or 1
  end
  redis.call("HSET", held, unpack(owned))  -- (2000 arguments at most: within unpack's limit)
  local deadline = now + length
  redis.call("ZADD", leases, deadline, token)
  redis.call("HSET", lease, token, cmsgpack.pack(record))
  redis.call("HINCRBY", stats, "leased", #taken)
  return {deadline, taken, found, remembered, counts or {}}
end
