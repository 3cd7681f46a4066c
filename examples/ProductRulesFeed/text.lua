-- Text helpers shared by the Behavior rules. Plain (non-pattern) searches
-- wherever possible: they are linear, and cmdlines are attacker-controlled.
local M = {}

--- True when `s` contains any of the literal needles in `list`.
function M.has_any(s, list)
  if type(s) ~= "string" then return false end
  for i = 1, #list do
    if string.find(s, list[i], 1, true) then return true end
  end
  return false
end

--- True when `s` contains every literal needle in `list`.
function M.has_all(s, list)
  if type(s) ~= "string" then return false end
  for i = 1, #list do
    if not string.find(s, list[i], 1, true) then return false end
  end
  return true
end

function M.starts_with(s, prefix)
  return type(s) == "string" and string.sub(s, 1, #prefix) == prefix
end

function M.ends_with(s, suffix)
  return type(s) == "string" and (suffix == "" or string.sub(s, -#suffix) == suffix)
end

--- A run of at least `n` base64 characters (encoded payloads in command lines).
function M.base64_run(s, n)
  if type(s) ~= "string" or #s < n then return false end
  return string.find(s, string.rep("[A-Za-z0-9+/]", n)) ~= nil
end

return M
