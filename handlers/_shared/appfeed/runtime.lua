-- APPFEED / USERAPPFEED runtime (trusted). Rule files register application
-- detectors with app{}; a run calls each detector in its own metered call and
-- collects the exclusions it proposes with exclude{}. The host API (JS
-- functions in `host`, env.ts) only reads. A rule that reaches for anything
-- else — a write, a tool outside the allow-list, a path outside the readable
-- ones — is *refused*: the attempt is recorded against it even if the rule
-- catches the error, and nothing it proposed in that run is used.
local S, host = ...

local error, type, pairs, ipairs, tostring, select = S.error, S.type, S.pairs, S.ipairs, S.tostring, S.select
local concat, pcall, setmetatable = S.concat, S.pcall, S.setmetatable

local R = {}
local apps = {}
local by_id = {}
local loading = nil
local current = nil
local MAX_EXCLUSIONS = 10000
local KINDS = { path = true, process = true, sha256 = true, signer = true }
local SCOPES = { scan = true, onAccess = true, behavior = true, lookups = true }

local function need(name)
  if current == nil then error(name .. " is only available inside an app's detect function", 3) end
end

local function refuse(what)
  if current and not current.refused then current.refused = what end
  error("refused: " .. what, 3)
end

-- Host functions raise "REFUSED: …" for attempts beyond the read-only API.
local function reading(name, fn)
  return function(...)
    need(name)
    local ok, res = pcall(fn, ...)
    if ok then return res end
    if type(res) == "string" then
      local at = S.find(res, "REFUSED: ", 1, true)
      if at then refuse(S.sub(res, at + 9)) end
    end
    error(res, 2)
  end
end

local function message(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  local text = concat(parts, " ")
  S.charge_output(#text + 16)
  current.messages[#current.messages + 1] = text
end

local function exclude(spec)
  need("exclude")
  if type(spec) ~= "table" then error("exclude{ kind =, value =, scope = {…}, reason = } expects a table", 2) end
  if not KINDS[spec.kind] then error("exclude{}: kind must be path, process, sha256 or signer", 2) end
  if type(spec.value) ~= "string" then error("exclude{}: value must be a string", 2) end
  if type(spec.scope) ~= "table" or #spec.scope == 0 then error("exclude{}: scope must list scan, onAccess, behavior or lookups", 2) end
  local scope = {}
  for i, s in ipairs(spec.scope) do
    if not SCOPES[s] then error("exclude{}: unknown scope " .. tostring(s), 2) end
    scope[i] = s
  end
  if #current.exclusions >= MAX_EXCLUSIONS then error("exclude{}: more than " .. MAX_EXCLUSIONS .. " exclusions from one app", 2) end
  local reason = spec.reason == nil and current.description or tostring(spec.reason)
  S.charge_output(#spec.value + #reason + 32)
  current.exclusions[#current.exclusions + 1] = { kind = spec.kind, value = spec.value, scope = scope, reason = reason }
end

local READ_ONLY = "APPFEED rules may only read (fs.exists, fs.stat, fs.read, fs.list)"

local function api_for(unit)
  local fs = {
    exists = reading("fs.exists", host.exists),
    stat = reading("fs.stat", host.stat),
    read = reading("fs.read", host.read),
    list = reading("fs.list", host.list),
  }
  -- fs.write, fs.remove, … do not exist; reaching for one is a refused write attempt.
  setmetatable(fs, {
    __index = function(_, k)
      need("fs." .. tostring(k))
      refuse("fs." .. tostring(k) .. ": " .. READ_ONLY)
    end,
    __newindex = function() error("fs is read-only", 2) end,
    __metatable = false,
  })
  local env = {
    apps = {
      installed = reading("apps.installed", host.installed),
      get = reading("apps.get", host.app),
    },
    fs = fs,
    exec = { query = reading("exec.query", function(tool, args) return host.query(tool, args or {}) end) },
    exclude = exclude,
  }
  env.log = function(...)
    if current then message(...) end
  end
  env.print = env.log
  function env.app(spec)
    if loading ~= unit then error("app{} is only available while the rule file loads", 2) end
    if type(spec) ~= "table" or type(spec.id) ~= "string" or type(spec.detect) ~= "function" then
      error("app{ id = ..., description = ..., detect = function() ... end }", 2)
    end
    if by_id[spec.id] then error("app " .. spec.id .. " is defined twice", 2) end
    local a = { id = spec.id, description = tostring(spec.description or spec.id), detect = spec.detect, file = unit.name }
    apps[#apps + 1] = a
    by_id[spec.id] = a
  end
  return env
end

local function to_limits(l)
  local out = S.to_limits(l)
  out.max_faults = 1000000 -- a failing app is reported (and keeps its previous exclusions), never disabled
  out.host_calls = true -- time in dpkg-query or file reads is the agent's, not the rule's
  return out
end

--- Loads rule files (each registers apps). Returns nil or the first failure.
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
  for _, a in ipairs(apps) do a.unit = S.new_unit(a.id, l) end
  return nil
end

--- Runs every app's detector; each result lists the exclusions it proposed.
function R.run()
  local results = {}
  for _, a in ipairs(apps) do
    current = { id = a.id, description = a.description, file = a.file, exclusions = {}, messages = {}, refused = false }
    S.cpu_mark()
    local ok, err = S.invoke(a.unit, a.detect)
    current.error = (not ok) and err or false
    current.detected = ok and (#current.exclusions > 0)
    current.ms = a.unit.time
    a.unit.time = 0
    results[#results + 1] = current
    current = nil
  end
  return results
end

function R.apps()
  local out = {}
  for i, a in ipairs(apps) do out[i] = { id = a.id, description = a.description, file = a.file } end
  return out
end

return R
