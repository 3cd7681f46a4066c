-- The rest of the installation: the control plane's secret and leftovers.

local function has(mode, bits)
  return mode & bits ~= 0
end

check {
  id = "installation.control-token",
  description = "The control-plane token is readable by the agent only",
  run = function(c)
    local st = fs.stat("control.token")
    if not st then
      c:ok("no token (the agent creates one when it starts its control plane)")
      return
    end
    if has(st.mode, octal("077")) then
      c:problem("control.token mode is " .. mode_string(st.mode) .. ": other users could drive the agent")
      c:fix("make it 0600", function() fs.chmod("control.token", octal("600")) end)
    end
    if st.uid ~= facts.agentUid then
      c:problem("control.token is owned by uid " .. st.uid)
      c:fix("give it back to the agent", function() fs.chown("control.token", facts.agentUid, facts.agentGid) end)
    end
  end,
}

check {
  id = "installation.stale-control",
  description = "No control-plane files left behind by an agent that is gone",
  run = function(c)
    if facts.online then
      c:ok("the agent is running")
      return
    end
    for _, name in ipairs({ "control.json", "control.sock" }) do
      if fs.exists(name) then
        c:problem(name .. " was left by an agent that is no longer running")
        c:fix("remove " .. name, function() fs.remove(name) end)
      end
    end
  end,
}

check {
  id = "installation.quarantine",
  description = "Quarantined files are kept for inspection, but not without limit",
  run = function(c)
    local names = fs.list("quarantine") or {}
    local keep = 50
    if #names <= keep then
      c:ok(#names .. " quarantined item(s)")
      return
    end
    -- Names start with an ISO timestamp: the first ones are the oldest.
    c:maintain("remove the " .. (#names - keep) .. " oldest quarantined item(s)", function()
      for i = 1, #names - keep do fs.remove("quarantine/" .. names[i]) end
    end)
  end,
}
