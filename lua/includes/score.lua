-- A score as the text Redis stores and reads back to the same double. A score
-- that would not be a finite number (1.7e308 added twice) is refused before
-- anything is written; psctl reads the NOTFINITE error back as a ValueError.
local function finite_score(number, key)
  if number ~= number or number == math.huge or number == -math.huge then
    error({err = "NOTFINITE the score of item " .. string.sub(key, 1, 200) ..
      " would not be a finite number; nothing was changed"})
  end
  return string.format("%.17g", number)
end
