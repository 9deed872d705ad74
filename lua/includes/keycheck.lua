-- Redis keeps the writes a script made before one of its commands failed, so
-- every script reads each key it will touch before its first write: a key of
-- the wrong type (written by another tool) then fails the script with nothing
-- changed. `checked` runs a command on `key` (one of the script's KEYS) and
-- turns a wrong-type error into one that names the key; `expect` checks a key
-- with the cheapest read of its type. The message is read back by
-- psctl.errors.wrong_type: "WRONGTYPE KEYS[i] (jobs:exp) holds a string, not a
-- zset", i the key's index in KEYS.
local function checked(key, kind, command, ...)
  local reply = redis.pcall(command, key, ...)
  if type(reply) == "table" and reply.err then
    if string.sub(reply.err, 1, 9) == "WRONGTYPE" then
      local index = 0
      for i, name in ipairs(KEYS) do
        if name == key then index = i break end
      end
      error({err = string.format("WRONGTYPE KEYS[%d] (%s) holds a %s, not a %s",
        index, key, redis.call("TYPE", key).ok, kind)})
    end
    error(reply)
  end
  return reply
end

-- (an if-chain, not a table: a script allocates as little as it can, since
-- the server collects a script's garbage in later calls)
local function expect(key, kind)
  local cardinality = kind == "hash" and "HLEN" or kind == "zset" and "ZCARD" or kind == "set" and "SCARD" or "LLEN"
  return checked(key, kind, cardinality)
end
