-- Acknowledging held items (ack-10.lua, acklease-15.lua): they leave the
-- stream, and gating and the cool-down apply now, as a pull's would. Keys the
-- token no longer holds are skipped, so acknowledging twice is harmless
-- (includes/holding.lua). Their deliveries (a held item's are in its lease's
-- record) and last failures are forgotten with them. In two steps, so that a
-- script that does more than acknowledge can read its other keys between
-- them, before its first write.
-- @include keycheck
-- @include holding

-- ack_reads(held, leases, lease, gated, cooling, failures, stats, token,
-- wanted, now, gate, at): reads (and checks) every key the acknowledgement
-- writes but NAME:t, whose write comes first: what `token` holds of `wanted`
-- (a table; nil for all it holds) at `now` (unix ms), to be gated when `gate`
-- and cooled down until `at` (unix seconds, text; nil for none). Returns nil
-- when the token holds nothing (its lease ran out: what it held comes back,
-- or already did); else the keys, whether the token holds others, and
-- whether NAME:fail has any entry.
local function ack_reads(held, leases, lease, gated, cooling, failures, stats, token, wanted, now, gate, at)
  local mine, _, _, others = holding(held, leases, lease, token, wanted, now)
  if not mine then return nil end
  local failed = false
  if #mine > 0 then
    if gate then expect(gated, "set") end
    if at then expect(cooling, "zset") end
    expect(stats, "hash")
    failed = expect(failures, "hash") > 0
  end
  return mine, others, failed
end

-- ack_writes(values, held, leases, lease, gated, cooling, failures, stats,
-- token, mine, others, failed, gate, at): the acknowledgement of what
-- ack_reads returned; NAME:t's write is the first (checked). Returns how many
-- items it acknowledged.
local function ack_writes(values, held, leases, lease, gated, cooling, failures, stats, token, mine, others, failed, gate, at)
  if #mine > 0 then
    checked(values, "hash", "HDEL", unpack(mine))  -- (a lease holds at most 1000 keys)
    redis.call("HDEL", held, unpack(mine))
    if failed then redis.call("HDEL", failures, unpack(mine)) end
    if gate then redis.call("SADD", gated, unpack(mine)) end
    if at then
      local entries = {}
      for i, key in ipairs(mine) do
        entries[2 * i - 1], entries[2 * i] = at, key
      end
      redis.call("ZADD", cooling, unpack(entries))  -- (2000 arguments at most: within unpack's limit)
    end
    redis.call("HINCRBY", stats, "acked", #mine)
  end
  if not others then forget(leases, lease, token) end
  return #mine
end
