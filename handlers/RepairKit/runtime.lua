-- RepairKit runtime (trusted). Rules register checks; a run calls each
-- check in its own metered call and records what it found and what it
-- fixed. The host API (JS functions in `host`) does the file work; this
-- runtime decides which of it may run: anything that changes the
-- installation only inside c:fix(), and c:fix() only when the run is not a
-- dry run.
local S, host = ...

local error, type, pairs, ipairs, tostring, select = S.error, S.type, S.pairs, S.ipairs, S.tostring, S.select
local format, concat, pcall, setmetatable = S.format, S.concat, S.pcall, S.setmetatable

local R = {}
local checks = {}
local by_id = {}
local loading = nil
local current = nil -- the result record of the running check
local in_fix = false
local dry_run = true
local facts = {}

local function need_check(name)
  if current == nil then error(name .. " is only available inside a check", 3) end
end

local function mutating(name, fn)
  return function(...)
    need_check(name)
    if not in_fix then error(name .. " changes the installation: call it inside c:fix()", 2) end
    return fn(...)
  end
end

local function reading(name, fn)
  return function(...)
    need_check(name)
    return fn(...)
  end
end

local function message(level, ...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  local text = concat(parts, " ")
  S.charge_output(#text + 16)
  current.messages[#current.messages + 1] = { level = level, text = text }
end

-- The object a check's run function receives.
local Check = {}
Check.__index = Check
Check.__metatable = false

function Check:ok(...)
  message("ok", ...)
end

function Check:warn(...)
  current.warnings = current.warnings + 1
  message("warning", ...)
end

function Check:problem(...)
  current.problems = current.problems + 1
  message("problem", ...)
end

local function do_fix(description, fn, kind)
  if type(description) ~= "string" or type(fn) ~= "function" then
    error("c:fix(description, function) expects a description and a function", 3)
  end
  if in_fix then error("c:fix() cannot be nested", 3) end
  S.charge_output(#description + 32)
  local fix = { description = description, kind = kind }
  current.fixes[#current.fixes + 1] = fix
  if dry_run then
    fix.status = "planned"
    return false
  end
  in_fix = true
  current.fix_index = #current.fixes
  local ok, err = pcall(fn)
  in_fix = false
  current.fix_index = nil
  -- A fix that ran out of budget ends the check; it does not get to carry on.
  if not ok and S.tripped() then error(err, 0) end
  if ok then
    if fix.status == nil then fix.status = "done" end
    return true
  end
  fix.status = "failed"
  fix.error = type(err) == "string" and err or "error object (" .. type(err) .. ")"
  return false
end

--- Repairs a problem the check found.
function Check:fix(description, fn)
  return do_fix(description, fn, "repair")
end

--- Upkeep that is not a repair (e.g. refreshing a backup): it does not make the check "repaired".
function Check:maintain(description, fn)
  return do_fix(description, fn, "maintenance")
end

local function octal(s)
  s = tostring(s)
  local n = 0
  for i = 1, #s do
    local d = s:byte(i) - 48
    if d < 0 or d > 7 then error("octal(): not an octal number: " .. s, 2) end
    n = n * 8 + d
  end
  return n
end

local function mode_string(n)
  return format("%04o", n)
end

-- Agent actions are queued and carried out after the checks (they may take a whole update cycle).
local function request(action, arg)
  local fix = current.fixes[current.fix_index]
  fix.status = "requested"
  fix.action = action
  fix.arg = arg
  host.request(action, arg)
end

local API = {
  fs = {
    stat = reading("fs.stat", host.stat),
    list = reading("fs.list", host.list),
    read = reading("fs.read", host.read),
    exists = reading("fs.exists", function(p) return host.stat(p) ~= nil end),
    mkdir = mutating("fs.mkdir", host.mkdir),
    chmod = mutating("fs.chmod", host.chmod),
    chown = mutating("fs.chown", host.chown),
    quarantine = mutating("fs.quarantine", host.quarantine),
    remove = mutating("fs.remove", host.remove),
  },
  state = {
    update_state = reading("state.update_state", host.update_state),
    reset_update_state = mutating("state.reset_update_state", host.reset_update_state),
    lock = reading("state.lock", host.lock),
    remove_stale_lock = mutating("state.remove_stale_lock", host.remove_stale_lock),
    index_cache = reading("state.index_cache", host.index_cache),
    clear_index_cache = mutating("state.clear_index_cache", host.clear_index_cache),
  },
  trust = {
    inspect = reading("trust.inspect", host.trust),
    backup = mutating("trust.backup", host.trust_backup),
    restore = mutating("trust.restore", host.trust_restore),
    tighten = mutating("trust.tighten", host.trust_tighten),
  },
  content = {
    list = reading("content.list", host.content),
    refetch = mutating("content.refetch", function(t)
      host.content_refetch(t)
      request("update")
    end),
  },
  config = {
    enable_updates = mutating("config.enable_updates", host.enable_updates),
  },
  agent = {
    update = mutating("agent.update", function() request("update") end),
    rollback = mutating("agent.rollback", function(t)
      if type(t) ~= "string" then error("agent.rollback(type) expects a content type", 2) end
      request("rollback", t)
    end),
  },
}

local function api_for(unit)
  local env = {}
  for name, lib in pairs(API) do
    local copy = {}
    for k, v in pairs(lib) do copy[k] = v end
    env[name] = copy
  end
  env.octal, env.mode_string = octal, mode_string
  -- Facts change per run (set_facts); rules read them through this view.
  env.facts = setmetatable({}, {
    __index = function(_, k) return facts[k] end,
    __newindex = function() error("facts are read-only", 2) end,
    __metatable = false,
  })
  env.log = function(...)
    if current then message("log", ...) end
  end
  env.print = env.log
  function env.check(spec)
    if loading ~= unit then error("check{} is only available while the ruleset loads", 2) end
    if type(spec) ~= "table" or type(spec.id) ~= "string" or type(spec.run) ~= "function" then
      error("check{ id = ..., description = ..., run = function(c) ... end }", 2)
    end
    if by_id[spec.id] then error("check " .. spec.id .. " is defined twice", 2) end
    local c = { id = spec.id, description = tostring(spec.description or spec.id), run = spec.run, file = unit.name }
    checks[#checks + 1] = c
    by_id[spec.id] = c
  end
  return env
end

local function to_limits(l)
  local out = S.to_limits(l)
  out.max_faults = 1000000 -- a check is reported as failed, never disabled
  out.host_calls = true -- time in the agent's fs/trust functions is not the check's
  return out
end

--- Loads rule files (each registers checks). Returns nil or the first failure.
function R.load(list, limits)
  local l = to_limits(limits)
  for _, r in ipairs(list) do
    local unit = S.new_unit(r.name, l)
    local fn, err = S.compile(r.name, r.source, S.new_env(api_for(unit)))
    if not fn then return { rule = r.name, message = err } end
    loading = unit
    local ok, e = S.invoke_load(unit, fn)
    loading = nil
    if not ok then return { rule = r.name, message = e } end
  end
  for _, c in ipairs(checks) do c.unit = S.new_unit(c.id, l) end
  return nil
end

function R.set_facts(f)
  facts = f
end

--- Runs every check. In a dry run no fix runs; results say what would be done.
function R.run(is_dry_run)
  dry_run = is_dry_run
  local results = {}
  for _, c in ipairs(checks) do
    current = {
      id = c.id, description = c.description, file = c.file, messages = {}, fixes = {}, problems = 0, warnings = 0,
    }
    S.cpu_mark()
    local ok, err = S.invoke(c.unit, c.run, setmetatable({}, Check))
    in_fix = false
    current.error = (not ok) and err or false
    current.ms = c.unit.time
    c.unit.time = 0
    results[#results + 1] = current
    current = nil
  end
  return results
end

function R.checks()
  local out = {}
  for i, c in ipairs(checks) do out[i] = { id = c.id, description = c.description, file = c.file } end
  return out
end

return R
