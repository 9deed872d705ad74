-- Calls redis.call(command, key, ...) over `items` a slice at a time, because
-- unpack() of a long table overflows Lua's C stack (LUAI_MAXCSTACK = 8000).
-- `step` must be a multiple of the arity (2 for ZADD and HSET pairs).
-- Returns the reply as it is when one slice holds every item; else the
-- replies of the slices, concatenated when they are arrays and summed when
-- they are integers.
local function call_in_slices(command, key, items, step)
  step = step or 4000
  local n = #items
  if n == 0 then return 0 end
  if n <= step then return redis.call(command, key, unpack(items)) end
  local total = 0
  local joined = {}
  for first = 1, n, step do
    local reply = redis.call(command, key, unpack(items, first, math.min(first + step - 1, n)))
    if type(reply) == "table" then
      for i = 1, #reply do joined[#joined + 1] = reply[i] end
    else
      total = total + reply
    end
  end
  if #joined > 0 then return joined end
  return total
end
