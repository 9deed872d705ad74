-- redis.call(command, key, ...) over `items` a slice at a time, because
-- unpack() of a long table overflows Lua's C stack (LUAI_MAXCSTACK = 8000).
-- SLICE is even, so pairs (ZADD, HSET) are never split.
local SLICE = 4000

-- For a command that replies an array (HMGET, ZMSCORE, SMISMEMBER): the
-- slices' arrays joined, one entry per item.
local function call_in_slices(command, key, items)
  local n = #items
  if n <= SLICE then
    if n == 0 then return {} end
    return redis.call(command, key, unpack(items))
  end
  local joined = {}
  for first = 1, n, SLICE do
    local reply = redis.call(command, key, unpack(items, first, math.min(first + SLICE - 1, n)))
    for i = 1, #reply do joined[#joined + 1] = reply[i] end
  end
  return joined
end

-- For a command that replies a count (ZREM, HDEL, SADD, ZADD, HSET): the
-- slices' counts summed.
local function count_in_slices(command, key, items)
  local n, total = #items, 0
  for first = 1, n, SLICE do
    total = total + redis.call(command, key, unpack(items, first, math.min(first + SLICE - 1, n)))
  end
  return total
end
