-- Wake-up tokens for pullers blocked on NAME:wake (BLPOP): one per item
-- added, up to WAKE_TOKENS queued, so that as many waiting pullers wake. A
-- full list is left alone (no write): a puller that blocks later finds a token
-- at once and pulls again. `queued` is the list's length, read before the
-- script's first write; a new list is gone within a minute.
local WAKE_TOKENS = 16
local function wake_pullers(list, added, queued)
  local tokens = {}
  for i = 1, math.min(added, WAKE_TOKENS - queued) do tokens[i] = "1" end
  if #tokens > 0 then
    redis.call("LPUSH", list, unpack(tokens))
    if queued == 0 then redis.call("EXPIRE", list, 60) end
  end
end
