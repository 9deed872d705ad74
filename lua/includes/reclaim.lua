-- Leases whose deadline has passed give their items back: each item a token
-- still holds returns to NAME:s with the score it had when it was leased, or,
-- when its deliveries have reached the max_deliveries it was leased with, goes
-- to NAME:dead. At most RECLAIM items are looked at per call (a lease holds at
-- most 1000), so that a pile of expired leases never makes one call long; the
-- rest come back in the next calls. Needs the locals scores, held, leases,
-- lease, parked, deliveries and dead (the script's KEYS, all checked before any
-- write) and the batch include. Returns {returned, died, more}.
local RECLAIM = 1000
local function reclaim(now)
  local tokens = redis.call("ZRANGEBYSCORE", leases, "-inf", now, "LIMIT", 0, RECLAIM)
  local returned, died, looked = 0, 0, 0
  local back, gone, buried, done = {}, {}, {}, {}
  for _, token in ipairs(tokens) do
    if looked >= RECLAIM then break end
    local record = redis.call("HGET", lease, token)
    done[#done + 1] = token
    if record then
      local entry = cmsgpack.unpack(record)
      local max = entry[1]
      local keys = {}
      for i = 2, #entry do keys[#keys + 1] = entry[i] end
      looked = looked + #keys
      local owners = call_in_slices("HMGET", held, keys)
      local mine = {}
      for i = 1, #keys do
        if owners[i] == token then mine[#mine + 1] = keys[i] end
      end
      if #mine > 0 then
        local counts = call_in_slices("HMGET", deliveries, mine)
        local remembered = call_in_slices("HMGET", parked, mine)
        for i, key in ipairs(mine) do
          gone[#gone + 1] = key
          if max > 0 and tonumber(counts[i] or 0) >= max then
            buried[#buried + 1] = now
            buried[#buried + 1] = key
            died = died + 1
          else
            back[#back + 1] = remembered[i] or "0"
            back[#back + 1] = key
            returned = returned + 1
          end
        end
      end
    end
  end
  if #gone > 0 then count_in_slices("HDEL", held, gone) end
  if #back > 0 then
    count_in_slices("ZADD", scores, back)
    local unparked = {}
    for i = 2, #back, 2 do unparked[#unparked + 1] = back[i] end
    count_in_slices("HDEL", parked, unparked)
  end
  if #buried > 0 then count_in_slices("ZADD", dead, buried) end
  if #done > 0 then
    count_in_slices("ZREM", leases, done)
    count_in_slices("HDEL", lease, done)
  end
  return {returned, died, (#done < #tokens or #tokens == RECLAIM) and 1 or 0}
end
