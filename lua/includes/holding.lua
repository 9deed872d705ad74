-- What a token still holds. NAME:held maps a held item's key to the token of
-- the lease holding it; NAME:lease maps the token to its record, a MessagePack
-- array {max_deliveries, key, score, deliveries, key, score, deliveries, ...}:
-- each key with the score it had when it was leased and how many leases it
-- has had, this one included. A record is never rewritten, so it may name
-- keys its token gave back: what the token holds is what NAME:held says. A
-- token acts only on what it still holds: after its lease ran out (by the
-- server's clock, even before the items came back) it holds nothing, and an
-- item it gave back, or that another token now holds, is not its own.
-- Its reads check their keys' types, so a script that calls it before its
-- first write need not check those again.
-- @include keycheck

-- holding(held, leases, lease, token, wanted, now): the keys, of `wanted` (a table) or of the whole
-- lease when `wanted` is nil, that `token` holds at `now` (each once); the
-- record and a table key -> the key's index in it (its score follows it, then
-- its deliveries). nil when the token holds nothing (its lease ran out or is
-- gone). A fourth value says whether the token holds anything outside those
-- keys.
local function holding(held, leases, lease, token, wanted, now)
  local deadline = checked(leases, "zset", "ZSCORE", token)
  if not deadline or tonumber(deadline) <= now then return nil end
  local packed = checked(lease, "hash", "HGET", token)
  if not packed then return nil end
  local record = cmsgpack.unpack(packed)
  local all = {}
  for i = 2, #record, 3 do all[#all + 1] = record[i] end
  local holders = checked(held, "hash", "HMGET", unpack(all))  -- (1000 keys at most)
  local owned, held_count = {}, 0
  for i, key in ipairs(all) do
    if holders[i] == token then  -- (Lua's strings are interned: a pointer comparison)
      owned[key] = 3 * i - 1
      held_count = held_count + 1
    end
  end
  local mine, where = {}, {}
  for _, key in ipairs(wanted or all) do
    local index = owned[key]
    if index and not where[key] then
      mine[#mine + 1] = key
      where[key] = index
    end
  end
  return mine, record, where, held_count > #mine
end

-- Forgets a lease that holds nothing more.
local function forget(leases, lease, token)
  redis.call("ZREM", leases, token)
  redis.call("HDEL", lease, token)
end
