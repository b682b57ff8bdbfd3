-- fieldwise_merge.lua: merge two concurrent changes column by column.
--
-- Each column comes from the side that changed it (ctx.mine_changed / ctx.theirs_changed).
-- When both changed the same column, the later commit wins, except `tags` (a json array):
-- there the result is the union of both arrays, duplicates removed, order kept (mine's
-- elements first, then theirs's new ones). Duplicates are found among strings, numbers and
-- booleans; tables (objects inside the array) are kept as they come.
-- Without the lists of changed columns there is nothing to merge: the conflict falls back.

local function union(a, b, ctx)
  local out, seen = ctx.array(), {}
  for _, list in ipairs({a, b}) do
    if type(list) == "table" then
      for _, v in ipairs(list) do
        local k = v
        if type(v) == "number" then k = math.type(v) .. ":" .. tostring(v) end
        if type(v) == "table" or not seen[k] then
          seen[k] = true
          out[#out + 1] = v
        end
      end
    end
  end
  return out
end

local function set_of(list)
  local s = {}
  for _, c in ipairs(list) do s[c] = true end
  return s
end

function resolve(mine, theirs, ctx)
  local mc, tc = ctx.mine_changed, ctx.theirs_changed
  if not mc or not tc then
    return nil, "the changed columns are not known"
  end
  local mine_changed = set_of(mc)
  local theirs_later = ctx.theirs_ts_us > ctx.mine_ts_us
  local row = {} -- columns left out keep mine's value
  for _, c in ipairs(tc) do
    if not mine_changed[c] then
      row[c] = theirs[c]
    elseif c == "tags" then
      row[c] = union(mine[c], theirs[c], ctx)
    elseif theirs_later then
      row[c] = theirs[c]
    end
  end
  return row
end
