-- RepairKit last-resort ruleset, compiled into the agent binary. It runs
-- when the delivered RepairKit rules cannot be verified, decrypted or
-- loaded, and it only repairs what AutoUpdate needs to fetch a working
-- RepairKit (and everything else) again: the state directory and its lock,
-- the update state, the trust store, the index cache and the update
-- schedule. Anything else waits for the delivered rules.

local function has(mode, bits)
  return mode & bits ~= 0
end

check {
  id = "autoupdate.state-dir",
  description = "The state directory exists, is a real directory, and only the agent can read or write it",
  run = function(c)
    local st = fs.stat(".")
    if not st then
      c:problem("state directory " .. facts.stateDir .. " is missing")
      c:fix("create it (mode 0700)", function() fs.mkdir(".", octal("700")) end)
      return
    end
    if st.type ~= "dir" then
      c:problem(facts.stateDir .. " is a " .. st.type .. ", not a directory; move it away by hand")
      return
    end
    local healthy = true
    -- Host processes that run as another user need to traverse it (o+x); nobody else needs more.
    if has(st.mode, octal("066")) then
      healthy = false
      c:problem("state directory mode is " .. mode_string(st.mode) .. ": readable or writable by other users")
      c:fix("remove group/other read and write", function() fs.chmod(".", st.mode & ~octal("066")) end)
    end
    if st.uid ~= facts.agentUid then
      healthy = false
      c:problem("state directory is owned by uid " .. st.uid .. ", not the agent's " .. facts.agentUid)
      c:fix("give it back to the agent", function() fs.chown(".", facts.agentUid, facts.agentGid) end)
    end
    if healthy then c:ok(facts.stateDir .. " " .. mode_string(st.mode)) end
  end,
}

check {
  id = "autoupdate.lock",
  description = "No stale agent.lock keeps the agent from starting",
  run = function(c)
    local l = state.lock()
    if not l.present then
      c:ok("no lock")
      return
    end
    if facts.online then
      c:ok("held by the running agent")
      return
    end
    local why
    if l.readable == false then
      why = "agent.lock cannot be read (" .. tostring(l.error) .. ")"
    elseif l.pid == false then
      why = "agent.lock holds no process id (" .. string.format("%q", l.raw or "") .. ")"
    elseif not l.alive then
      why = "agent.lock names pid " .. l.pid .. ", which is not running"
    elseif l.agent == false then
      why = "agent.lock names pid " .. l.pid .. ", which is not an Outpost agent (the pid was reused)"
    end
    if why then
      c:problem(why)
      c:fix("remove the stale lock", function() state.remove_stale_lock() end)
    else
      c:warn("agent.lock is held by live agent pid " .. tostring(l.pid))
    end
  end,
}

check {
  id = "autoupdate.update-state",
  description = "update-state.json (index serials, schedule bookkeeping) is readable and private",
  run = function(c)
    local s = state.update_state()
    if not s.present then
      c:ok("not created yet (the first update cycle writes it)")
      return
    end
    if not s.ok then
      c:problem("update-state.json is unreadable: " .. tostring(s.error))
      if facts.online then
        -- The running agent holds an intact copy in memory and saves it after every cycle.
        c:fix("let the running agent write it again from memory", function() agent.update() end)
      else
        c:fix("quarantine it and start a fresh one that keeps each group's index serial", function()
          local r = state.reset_update_state()
          local kept = {}
          for group, serial in pairs(r.preserved) do kept[#kept + 1] = group .. "≥" .. serial end
          table.sort(kept)
          c:ok("serial floor kept: " .. (#kept > 0 and table.concat(kept, ", ") or "none recoverable"))
        end)
      end
      return
    end
    local st = fs.stat("update-state.json")
    if st and has(st.mode, octal("077")) then
      c:problem("update-state.json mode is " .. mode_string(st.mode))
      c:fix("make it 0600", function() fs.chmod("update-state.json", octal("600")) end)
      return
    end
    c:ok("readable; " .. tostring(s.consecutiveFailures or 0) .. " consecutive failed cycles")
  end,
}

check {
  id = "autoupdate.trust-store",
  description = "The trust store is present, parses, and cannot be changed by other users",
  run = function(c)
    local t = trust.inspect()
    if not t.ok then
      c:problem("trust store " .. t.path .. ": " .. tostring(t.error))
      if t.backup.present and t.backup.certs > 0 then
        c:fix("restore it from the copy kept after it last verified the index", function() trust.restore() end)
      else
        c:warn("no verified backup of the trust store exists: reinstall it from the vendor")
      end
      return
    end
    if t.type ~= "file" then
      c:problem(t.path .. " is a " .. tostring(t.type) .. ", not a regular file")
      return
    end
    if has(t.mode, octal("022")) or t.uid ~= facts.agentUid then
      c:problem("trust store mode " .. mode_string(t.mode) .. ", owner uid " .. t.uid .. ": others could replace it")
      c:fix("make it read-only for others and owned by the agent", function() trust.tighten() end)
    end
    if t.verifiesIndex and not t.backup.present then
      c:maintain("keep a backup of the trust store (it verifies the cached index)", function() trust.backup() end)
    end
    c:ok(t.certs .. " root certificate(s)" .. (t.verifiesIndex and ", verifies the cached index" or ""))
  end,
}

check {
  id = "autoupdate.index-cache",
  description = "Cached repository indexes are whole and verify",
  run = function(c)
    local groups = state.index_cache()
    if #groups == 0 then
      c:ok("empty")
      return
    end
    for _, g in ipairs(groups) do
      if g.ok and g.verified == nil then
        c:warn("group " .. g.group .. ": cannot be verified until the trust store is usable")
      elseif g.ok then
        c:ok("group " .. g.group .. ": serial " .. tostring(g.serial))
      else
        c:problem("cached index for group " .. g.group .. ": " .. tostring(g.problem))
        c:fix("drop it; the next cycle fetches the index in full", function() state.clear_index_cache(g.group) end)
      end
    end
  end,
}

check {
  id = "autoupdate.schedule",
  description = "The update loop is enabled and running on schedule",
  run = function(c)
    if not facts.update.enabled then
      c:problem("the update loop is disabled in the configuration (update.enabled = false)")
      if facts.configFile then
        c:fix("enable it in " .. facts.configFile .. " (the agent picks it up when it restarts)", function()
          config.enable_updates()
        end)
      else
        c:warn("run `agent run-repair --config FILE` to let RepairKit re-enable it")
      end
      return
    end
    if not facts.online then
      c:ok("enabled; the agent is not running, so no cycle is scheduled")
      return
    end
    local st = facts.status
    if not st then
      c:warn("the agent's status is not available")
      return
    end
    local interval = facts.update.intervalSeconds * 1000
    local grace = 2 * interval + facts.update.maxBackoffSeconds * 1000
    if facts.mode ~= "in-cycle" then
      if st.nextRunMs == false then
        c:problem("the running agent has no update cycle scheduled")
        c:fix("run a cycle now", function() agent.update() end)
        return
      end
      if facts.now - st.nextRunMs > 10 * 60 * 1000 then
        c:problem("the update loop is stalled: its next cycle was due at " .. st.nextRun)
        c:fix("run a cycle now", function() agent.update() end)
        return
      end
    end
    if st.lastAttemptMs ~= false and facts.now - st.lastAttemptMs > grace then
      c:problem("no update attempt since " .. st.lastAttempt)
      c:fix("run a cycle now", function() agent.update() end)
      return
    end
    if st.consecutiveFailures >= 3 then
      c:warn(st.consecutiveFailures .. " update cycles failed in a row; see agent status for the reasons")
    end
    c:ok("enabled; next cycle " .. tostring(st.nextRun))
  end,
}
