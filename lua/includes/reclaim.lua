-- Leases whose deadline has passed give their items back: each item a token
-- still holds (includes/holding.lua) returns to NAME:s with the score it had
-- when it was leased, or, when its deliveries have reached the max_deliveries
-- it was leased with, goes to NAME:dead; either way its deliveries go to
-- NAME:dlv. (Records whose max_deliveries is RELEASED hold the items of a
-- delayed release made by psctl 0.2, before delayed items had a state of
-- their own: they come back the same way, but were counted released, not
-- redelivered, and never go to NAME:dead here.) At most RECLAIM leases, and
-- about RECLAIM items (a lease holds at most 1000), are looked at per call,
-- in a handful of bulk commands, so that a pile of expired leases never makes
-- one call long; the rest come back in the next calls. Each item of a lease
-- that ran out keeps "lease expired" as its last failure (NAME:fail). `K`:
-- the script's keys by name (scores, held, leases, lease, deliveries, dead
-- and failures are used), of the right types: checked before any write;
-- `shift`: aging's (includes/aging.lua), by which a remembered score goes
-- back into NAME:s. Returns {redelivered, died, more}: the items of leases that ran out that
-- came back, and those that went to NAME:dead.
-- @include batch
-- @include aging
local RECLAIM = 500
local RELEASED = -1  -- the max_deliveries of a delayed release's record (psctl 0.2)
local function reclaim(K, now, shift)
  local tokens = redis.call("ZRANGEBYSCORE", K.leases, "-inf", now, "LIMIT", 0, RECLAIM)
  if #tokens == 0 then return {0, 0, 0} end
  local records = redis.call("HMGET", K.lease, unpack(tokens))
  local keys, owners, lasts, counts, maxima = {}, {}, {}, {}, {}
  local done = 0
  for i, token in ipairs(tokens) do
    if #keys >= RECLAIM then break end
    done = i
    if records[i] then
      local record = cmsgpack.unpack(records[i])
      for j = 2, #record, 3 do
        local n = #keys + 1
        keys[n], lasts[n], counts[n] = record[j], record[j + 1], record[j + 2]
        owners[n], maxima[n] = token, record[1]
      end
    end
  end
  local redelivered, died = 0, 0
  if #keys > 0 then
    local holders = call_in_slices("HMGET", K.held, keys)
    local back, buried, gone, counted, failed = {}, {}, {}, {}, {}
    for i, key in ipairs(keys) do
      if holders[i] == owners[i] then
        gone[#gone + 1] = key
        if counts[i] > 0 then  -- (0: given back unstarted from its first lease)
          counted[#counted + 1] = key
          counted[#counted + 1] = counts[i]
        end
        if maxima[i] ~= RELEASED then
          failed[#failed + 1] = key
          failed[#failed + 1] = cmsgpack.pack({"lease expired", now, counts[i]})
        end
        if maxima[i] > 0 and counts[i] >= maxima[i] then
          buried[#buried + 1] = lasts[i]
          buried[#buried + 1] = key
          died = died + 1
        else
          back[#back + 1] = stored(lasts[i], shift)
          back[#back + 1] = key
          if maxima[i] ~= RELEASED then redelivered = redelivered + 1 end
        end
      end
    end
    count_in_slices("HDEL", K.held, gone)
    count_in_slices("HSET", K.deliveries, counted)
    count_in_slices("ZADD", K.scores, back)
    count_in_slices("ZADD", K.dead, buried)
    count_in_slices("HSET", K.failures, failed)
  end
  redis.call("ZREMRANGEBYRANK", K.leases, 0, done - 1)
  count_in_slices("HDEL", K.lease, {unpack(tokens, 1, done)})
  return {redelivered, died, (done < #tokens or #tokens == RECLAIM) and 1 or 0}
end
