-- keep_higher_balance.lua: of two concurrent changes, keep the row with the higher balance.
--
-- For a mapping with a numeric (decimal) column `balance`:
--   conflict: { strategy: script, script: ../resolvers/keep_higher_balance.lua }
-- Decimals arrive as exact strings ("1042.50"); ctx.cmp compares them exactly, with no float
-- rounding. A NULL balance loses to any number; on a tie the target keeps its row.

function resolve(mine, theirs, ctx)
  local a, b = mine.balance, theirs.balance
  if a == nil or b == nil then
    return nil, "balance missing on one side"
  end
  if b == ctx.null then return mine end
  if a == ctx.null then return theirs end
  if ctx.cmp(b, a) > 0 then return theirs end
  return mine
end
