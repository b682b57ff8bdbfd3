-- sum_counters.lua: two nodes both added to a counter; keep both increments.
--
-- For a mapping with an integer column `n`: n = mine.n + theirs.n - base.n, where base is the
-- common ancestor's row. Without an ancestor there is no safe sum: the conflict is recorded
-- and the fallback (lww) decides. NULL counts as 0. Other columns follow the incoming row.

local function num(v, ctx)
  if v == nil or v == ctx.null then return 0 end
  return v
end

function resolve(mine, theirs, ctx)
  local base = ctx.base
  if base == nil then
    return nil, "no common ancestor"
  end
  local row = theirs
  row.n = num(mine.n, ctx) + num(theirs.n, ctx) - num(base.n, ctx)
  return row
end
