--[[
  Adds items to a stream, or adds to the scores of items already there, unless
  the key is gated or cooling down.

  KEYS[1]  NAME:t    hash: item key -> value
  KEYS[2]  NAME:s    sorted set: item key -> score
  KEYS[3]  NAME:exc  set: gated keys
  KEYS[4]  NAME:exp  sorted set: cooling-down key -> unix time
  KEYS[5]  NAME:wake list: wake-up tokens for blocked pullers (BLPOP); at most
           WAKE_TOKENS, gone a minute after the last add

  ARGV[1]  "1": re-add, clearing the gate and the cool-down of each key first
  ARGV[2..] triples: item key, value, score increment

  Returns an array: [1] 1 when none of the stream's keys existed before this
  call (the caller registers the name), else 0; then one element per item, in
  order: the new score as a string ("%.17g", exact), or false when refused.
  Duplicated keys are applied in order: values overwrite, increments add up.
]]
local values, scores, gated, cooling, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local WAKE_TOKENS = 16
-- @include batch

local readd = ARGV[1] == "1"
local count = (#ARGV - 1) / 3
local born = redis.call("EXISTS", values, scores, gated, cooling) == 0
local reply = {born and 1 or 0}
if count == 0 then return reply end

local keys = {}
for i = 1, count do keys[i] = ARGV[3 * i - 1] end

local refused = {}
if readd then
  call_in_slices("SREM", gated, keys)
  call_in_slices("ZREM", cooling, keys)
elseif not born then
  local is_gated = call_in_slices("SMISMEMBER", gated, keys)
  local cooldown = call_in_slices("ZMSCORE", cooling, keys)
  for i = 1, count do
    refused[i] = is_gated[i] == 1 or cooldown[i] ~= false
  end
end

local current = {}
if not born then current = call_in_slices("ZMSCORE", scores, keys) end

local score_of = {}   -- running score per key, so duplicates accumulate
local value_of = {}   -- last value per key wins
local order = {}      -- first-seen order of accepted keys
for i = 1, count do
  if refused[i] then
    reply[i + 1] = false
  else
    local key = keys[i]
    local base = score_of[key]
    if base == nil then
      order[#order + 1] = key
      base = tonumber(current[i]) or 0
    end
    local score = base + tonumber(ARGV[3 * i + 1])
    score_of[key] = score
    value_of[key] = ARGV[3 * i]
    reply[i + 1] = string.format("%.17g", score)
  end
end

if #order > 0 then
  local hash_pairs, zset_pairs = {}, {}
  for _, key in ipairs(order) do
    hash_pairs[#hash_pairs + 1] = key
    hash_pairs[#hash_pairs + 1] = value_of[key]
    zset_pairs[#zset_pairs + 1] = string.format("%.17g", score_of[key])
    zset_pairs[#zset_pairs + 1] = key
  end
  call_in_slices("HSET", values, hash_pairs)
  call_in_slices("ZADD", scores, zset_pairs)
  -- one token per new item, so that as many waiting pullers wake
  local tokens = {}
  for i = 1, math.min(#order, WAKE_TOKENS) do tokens[i] = "1" end
  redis.call("LPUSH", wake, unpack(tokens))
  redis.call("LTRIM", wake, 0, WAKE_TOKENS - 1)
  redis.call("EXPIRE", wake, 60)
end
return reply
