-- Installed content: every version must still match its signed manifest,
-- and nobody but the agent may change it.

local function has(mode, bits)
  return mode & bits ~= 0
end

check {
  id = "content.integrity",
  description = "Every installed content version matches its signed manifest",
  run = function(c)
    local types = content.list()
    if #types == 0 then
      c:ok("no content installed yet")
      return
    end
    for _, t in ipairs(types) do
      if t.ok then
        if t.version then c:ok(t.type .. " v" .. t.version) end
      elseif t.version then
        c:problem(t.type .. " v" .. t.version .. " is damaged on disk: " .. table.concat(t.problems, "; "))
        c:fix("fetch " .. t.type .. " again from the repository", function() content.refetch(t.type) end)
      else
        c:problem(t.type .. ": " .. table.concat(t.problems, "; "))
        c:fix("fetch " .. t.type .. " again from the repository", function() content.refetch(t.type) end)
      end
    end
  end,
}

check {
  id = "content.permissions",
  description = "Installed content cannot be changed by other users",
  run = function(c)
    local fixed, seen = 0, 0
    local function walk(path, depth)
      local st = fs.stat(path)
      if not st or st.type == "link" then return end
      seen = seen + 1
      if has(st.mode, octal("022")) then
        fixed = fixed + 1
        c:problem(path .. " is writable by others (" .. mode_string(st.mode) .. ")")
        c:fix("chmod go-w " .. path, function() fs.chmod(path, st.mode & ~octal("022")) end)
      end
      if st.type == "dir" and depth < 6 and seen < 5000 then
        for _, name in ipairs(fs.list(path) or {}) do walk(path .. "/" .. name, depth + 1) end
      end
    end
    if fs.exists("content") then walk("content", 0) end
    if fixed == 0 then c:ok(seen .. " entries checked") end
  end,
}
