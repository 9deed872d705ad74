-- Redis keeps the writes a script made before one of its commands failed, so
-- every script reads each key it will touch before its first write: a key of
-- the wrong type (written by another tool) then fails the script with nothing
-- changed. `checked` runs a command on KEYS[index] and turns a wrong-type
-- error into one that names the key; `expect` checks a key with the cheapest
-- read of its type. The message is read back by psctl.errors.wrong_type:
-- "WRONGTYPE KEYS[i] (jobs:exp) holds a string, not a zset", i the index.
local function checked(index, kind, command, ...)
  local reply = redis.pcall(command, KEYS[index], ...)
  if type(reply) == "table" and reply.err then
    if string.sub(reply.err, 1, 9) == "WRONGTYPE" then
      error({err = string.format("WRONGTYPE KEYS[%d] (%s) holds a %s, not a %s",
        index, KEYS[index], redis.call("TYPE", KEYS[index]).ok, kind)})
    end
    error(reply)
  end
  return reply
end

-- (an if-chain, not a table: a script allocates as little as it can, since
-- the server collects a script's garbage in later calls)
local function expect(index, kind)
  local cardinality = kind == "hash" and "HLEN" or kind == "zset" and "ZCARD" or kind == "set" and "SCARD" or "LLEN"
  return checked(index, kind, cardinality)
end
