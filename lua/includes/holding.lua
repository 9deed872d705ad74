-- What a token still holds. A token acts only on what it still holds: after
-- its lease ran out (by the server's clock, even before the items came back)
-- it holds nothing, and an item it gave back, or that another token now holds,
-- is not its own. Needs the locals held, leases, lease and the batch include.
-- Returns the keys, of `wanted` (a table) or of the whole lease when `wanted`
-- is nil, that `token` holds at `now`, and the lease's max_deliveries; or nil
-- when the token holds nothing (its lease ran out or is gone). A third value
-- says whether the token holds anything outside those keys.
local function holding(token, wanted, now)
  local deadline = redis.call("ZSCORE", leases, token)
  if not deadline or tonumber(deadline) <= now then return nil, 0, false end
  local record = redis.call("HGET", lease, token)
  if not record then return nil, 0, false end
  local entry = cmsgpack.unpack(record)
  local all = {}
  for i = 2, #entry do all[#all + 1] = entry[i] end
  local keys = wanted or all
  local owners = call_in_slices("HMGET", held, keys)
  local mine, asked = {}, {}
  for i = 1, #keys do
    if owners[i] == token and not asked[keys[i]] then
      mine[#mine + 1] = keys[i]
      asked[keys[i]] = true
    end
  end
  local others = false
  if wanted then
    local everyone = call_in_slices("HMGET", held, all)
    for i = 1, #all do
      if everyone[i] == token and not asked[all[i]] then
        others = true
        break
      end
    end
  end
  return mine, entry[1], others
end

-- Forgets a lease that holds nothing more.
local function forget(token)
  redis.call("ZREM", leases, token)
  redis.call("HDEL", lease, token)
end
