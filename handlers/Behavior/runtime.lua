-- Behavior rules runtime (trusted). Runs after the sandbox prelude in the
-- same Lua state and receives its internals. It gives each rule its API —
-- describe{}, on(type, fn, opts), detect{}, log(), product — and dispatches
-- batches of events that JS packs into one string (see codec.ts): one
-- boundary crossing per batch, not per event.
local S = ...

local error, type, pairs, ipairs, tostring, select = S.error, S.type, S.pairs, S.ipairs, S.tostring, S.select
local format, concat, unpack = S.format, S.concat, S.unpack_bytes
local setmetatable, raw_getmetatable, next = S.setmetatable, S.raw_getmetatable, S.next

local R = {}
local product = {} -- ProductRulesFeed modules: name → table
local library_units = {}
local rules = {} -- units, in load order
local subs, subs_by_type, sub_count = {}, {}, 0
local decoders = {}
local detections, logs = {}, {}
local loading = nil -- the rule whose chunk is running
local current_sub, current_event = nil, 0

local SEVERITIES = { info = true, low = true, medium = true, high = true, critical = true }
local MAX_SUBSCRIPTIONS = 65534
local ALL = 0xFFFF

local function scalar(v)
  local t = type(v)
  return t == "string" or t == "number" or t == "boolean"
end

-- Subscription options (aggregation, conditions) cross to JS; only plain
-- data, and not much of it. Too much is an error, never a silent cut: a
-- condition list cut short would hold back events the rule wants.
local MAX_OPTION_ENTRIES = 1024
local function plain(v, depth)
  if scalar(v) then return v end
  if type(v) ~= "table" then return nil end
  if depth > 3 then error("on(): options nested too deeply", 3 + depth) end
  local out, n = {}, 0
  for k, item in pairs(v) do
    n = n + 1
    if n > MAX_OPTION_ENTRIES then
      error("on(): an options table has more than " .. MAX_OPTION_ENTRIES .. " entries", 3 + depth)
    end
    if type(k) == "string" or type(k) == "number" then out[k] = plain(item, depth + 1) end
  end
  return out
end

local function readonly_event_error()
  error("events are read-only", 2)
end

-- Every rule sees the same event; a read-only view keeps one rule from
-- changing it for the next. Iterating it (S.view_pairs) never hands out the
-- table behind it.
local function make_event(raw)
  return setmetatable({}, {
    __index = raw,
    __newindex = readonly_event_error,
    __pairs = S.view_pairs,
    __metatable = "event",
  })
end

-- One deep read-only view of the library, shared by every rule.
local product_ro = S.readonly({})

local function make_api(unit)
  local meta = { title = unit.name, severity = "medium" }
  local api = {}

  function api.describe(t)
    if loading ~= unit then error("describe{} is only available while the rule loads", 2) end
    if type(t) ~= "table" then error("describe{} expects a table", 2) end
    for k, v in pairs(t) do
      if type(k) == "string" and scalar(v) then meta[k] = v end
    end
    if not SEVERITIES[meta.severity] then error("describe{}: unknown severity " .. tostring(meta.severity), 2) end
  end

  -- on(type, fn [, opts]) or on(type, opts, fn): opts holds aggregation and conditions.
  function api.on(event_type, fn, opts)
    if loading ~= unit then error("on() is only available while the rule loads", 2) end
    if type(event_type) ~= "string" or #event_type == 0 or #event_type > 64 then
      error("on(type, fn): type must be a non-empty string", 2)
    end
    if type(fn) == "table" and type(opts) == "function" then fn, opts = opts, fn end
    if type(fn) ~= "function" then error("on(type, fn): fn must be a function", 2) end
    if opts ~= nil and type(opts) ~= "table" then error("on(type, fn, opts): opts must be a table", 2) end
    if sub_count >= MAX_SUBSCRIPTIONS then error("too many subscriptions", 2) end
    sub_count = sub_count + 1
    local sub = { id = sub_count, unit = unit, fn = fn, type = event_type, opts = opts and plain(opts, 0) }
    subs[sub_count] = sub
    local list = subs_by_type[event_type]
    if not list then
      list = {}
      subs_by_type[event_type] = list
    end
    list[#list + 1] = sub
    unit.subscriptions = unit.subscriptions + 1
    unit.roots[#unit.roots + 1] = fn
  end

  function api.detect(t, fields)
    if current_sub == nil or current_sub.unit ~= unit then
      error("detect() is only available inside a reactor", 2)
    end
    if type(t) == "string" then
      local title = t
      t = fields or {}
      if type(t) ~= "table" then error("detect(title, fields): fields must be a table", 2) end
      t.title = t.title or title
    end
    if type(t) ~= "table" then error("detect{} expects a table", 2) end
    local d, size = {}, 64
    for k, v in pairs(t) do
      if type(k) ~= "string" then error("detect{}: field names must be strings", 2) end
      if not scalar(v) then error("detect{}: field '" .. k .. "' must be a string, number or boolean", 2) end
      size = size + #k + (type(v) == "string" and #v or 8)
      d[k] = v
    end
    S.charge_output(size)
    if d.title == nil then d.title = meta.title end
    if d.severity == nil then d.severity = meta.severity end
    if not SEVERITIES[d.severity] then error("detect{}: unknown severity " .. tostring(d.severity), 2) end
    detections[#detections + 1] = { rule = unit.name, event = current_event, sub = current_sub.id, fields = d }
    unit.detections = unit.detections + 1
  end

  function api.log(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    local line = concat(parts, " ")
    S.charge_output(#line + 16)
    logs[#logs + 1] = { rule = unit.name, message = line }
  end
  api.print = api.log
  api.product = product_ro
  return api, meta
end

local to_limits = S.to_limits

--- ProductRulesFeed modules, loaded before any rule. Returns nil or a failure.
function R.load_library(modules, limits)
  local units, failure = S.load_modules(product, modules, to_limits(limits), "product")
  if not units then return failure end
  library_units = units
  product_ro = S.readonly(product)
  S.set_shared({ product, product_ro })
  return nil
end

--- Syntax check only: nothing runs (used by validation and `rules test`).
function R.check_syntax(list)
  local failures = {}
  for _, r in ipairs(list) do
    local fn, err = S.compile(r.name, r.source, {})
    if not fn then failures[#failures + 1] = { rule = r.name, message = err } end
  end
  return failures
end

--- Compiles and runs each rule's chunk (where it registers its reactors).
function R.load_rules(list, limits)
  local failures = {}
  local l = to_limits(limits)
  for _, r in ipairs(list) do
    local unit = S.new_unit(r.name, l)
    unit.subscriptions, unit.detections = 0, 0
    local api, meta = make_api(unit)
    unit.meta = meta
    local env = S.new_env(api)
    -- What the rule holds is what it can reach from its globals and reactors;
    -- once it is disabled, dropping them frees its memory.
    S.track(unit, { env }, function()
      for k in next, env do env[k] = nil end
      for id = 1, sub_count do
        if subs[id].unit == unit then subs[id].fn = nil end
      end
    end)
    local fn, err = S.compile(r.name, r.source, env)
    if not fn then
      failures[#failures + 1] = { rule = r.name, message = err }
    else
      loading = unit
      local ok, e = S.invoke_load(unit, fn)
      loading = nil
      if not ok then failures[#failures + 1] = { rule = r.name, message = e } end
    end
    unit.load_time, unit.calls, unit.time, unit.max_time = unit.time, 0, 0, 0
    rules[#rules + 1] = unit
  end
  S.take_disabled()
  return failures
end

--- Registers a decoder for one event shape (field names, string.unpack format, which fields are booleans).
function R.define_schema(id, fmt, names, booleans)
  local vars, fields = {}, {}
  for i, name in ipairs(names) do
    vars[i] = "v" .. i
    fields[i] = format("[%q]=%s", name, booleans[i] and ("(v" .. i .. "==1)") or ("v" .. i))
  end
  local src = "local unpack, fmt, mk = ... return function(s, pos) local " .. concat(vars, ",")
    .. ", np = unpack(fmt, s, pos) return mk({" .. concat(fields, ",") .. "}), np end"
  local build = S.load(src, "=decoder", "t", {})
  decoders[id] = build(unpack, fmt, make_event)
end

-- A host call must end before the host's call timeout, or the supervisor
-- kills the host (and a crash loop rolls back innocent content). A batch
-- that runs past `deadline_ms` stops; the rule that used the most of it is
-- charged a fault when it used at least half; the events not delivered are
-- counted by the caller.
local function over_deadline(t0, deadline_ms, times, faults)
  local worst, worst_ms, worst_i = nil, 0, 0
  for i, u in ipairs(rules) do
    local d = u.time - times[i]
    if not u.disabled and d > worst_ms then worst, worst_ms, worst_i = u, d, i end
  end
  -- Not twice for the same time: a call stopped at the cap was charged already.
  if worst and worst_ms >= deadline_ms / 2 and worst.faults == faults[worst_i] then
    S.fault(worst, format("time limit exceeded (the rule ran %.0f ms of a batch that may take %d ms)", worst_ms,
      deadline_ms), true)
  end
end

-- One rule's share of a batch: its deliveries in event order (sub, event index).
local work_subs, work_events, batch_events = {}, {}, {}

-- One delivery, run by S.invoke_each inside the rule's meter.
local function step(i)
  local sub = work_subs[i]
  current_sub, current_event = sub, work_events[i]
  local fn = sub.fn
  if fn then fn(batch_events[current_event]) end
end

-- Detections in event order, then subscription order, as if every event had
-- gone to each of its reactors in turn (rules run one after the other).
local function by_event(a, b)
  return a.key < b.key
end

--- Runs one packed batch (codec.ts). Returns what the rules produced, and
--- how many events it delivered when it stopped at the deadline.
---
--- Metering is per rule per batch: the batch is decoded first, then each
--- rule receives its events in order under one meter (S.invoke_each), which
--- reads the clock once per batch instead of twice per event while every
--- event keeps the rule's full per-call limits.
function R.dispatch(batch, deadline_ms)
  local pos, len, idx = 1, #batch, 0
  detections, logs = {}, {}
  S.cpu_mark()
  local t0, times, faults, stopped = S.clock(), nil, nil, nil
  local at = deadline_ms and t0 + deadline_ms or S.huge
  if deadline_ms then
    times, faults = {}, {}
    for i, u in ipairs(rules) do times[i], faults[i] = u.time, u.faults end
  end
  -- Decode every event, and sort each delivery under its rule.
  local events, per_unit = {}, {}
  while pos <= len do
    local sid, ev, n
    sid, pos = unpack("<I2", batch, pos)
    ev, pos = decoders[sid](batch, pos)
    idx = idx + 1
    events[idx] = ev
    n, pos = unpack("<I2", batch, pos)
    local list, count
    if n == ALL then
      list = subs_by_type[ev.type]
      count = list and #list or 0
    else
      count = n
    end
    for k = 1, count do
      local sub
      if list then
        sub = list[k]
      else
        local id
        id, pos = unpack("<I2", batch, pos)
        sub = subs[id]
      end
      local unit = sub.unit
      if not unit.disabled and sub.fn then
        local w = per_unit[unit]
        if not w then
          w = { n = 0, subs = {}, events = {} }
          per_unit[unit] = w
        end
        local m = w.n + 1
        w.n, w.subs[m], w.events[m] = m, sub, idx
      end
    end
  end
  S.set_call_cap(deadline_ms)
  S.reuse_heap(true)
  S.heap_changed() -- decoding allocated
  batch_events = events
  -- Events up to first_undelivered - 1 reached every reactor they were for.
  local first_undelivered, stop_at = idx + 1, nil
  for i, u in ipairs(rules) do
    local w = per_unit[u]
    if w then
      if S.clock() > at then
        stop_at = i
        break
      end
      work_subs, work_events = w.subs, w.events
      local done, late = S.invoke_each(u, w.n, step)
      if late then
        -- This rule got its events up to `done`; the rules after it, none.
        if done < w.n then first_undelivered = w.events[done + 1] end
        stop_at = i + 1
        break
      end
    end
  end
  if stop_at then
    for i = stop_at, #rules do
      local w = per_unit[rules[i]]
      if w and w.events[1] < first_undelivered then first_undelivered = w.events[1] end
    end
    stopped = first_undelivered - 1
    over_deadline(t0, deadline_ms, times, faults)
  end
  work_subs, work_events, batch_events = {}, {}, {}
  current_sub = nil
  S.set_call_cap(nil)
  S.reuse_heap(false)
  if #detections > 1 then
    local nd = #detections
    for i = 1, nd do
      local d = detections[i]
      d.key = (d.event * 65536 + d.sub) * 1048576 + i
    end
    S.sort(detections, by_event)
    for i = 1, nd do
      local d = detections[i]
      d.key, d.sub = nil, nil
    end
  elseif detections[1] then
    detections[1].sub = nil
  end
  return {
    detections = detections, logs = logs, disabled = S.take_disabled(),
    stopped = stopped or false,
  }
end

function R.subscriptions()
  local out = {}
  for id = 1, sub_count do
    local s = subs[id]
    out[id] = { id = id, rule = s.unit.name, type = s.type, opts = s.opts or false }
  end
  return out
end

local function unit_stats(u)
  return {
    name = u.name, calls = u.calls, timeMs = u.time, maxMs = u.max_time, faults = u.faults,
    limitFaults = u.limit_faults, disabled = u.disabled, lastError = u.last_error or false,
    detections = u.detections or 0, subscriptions = u.subscriptions or 0, loadMs = u.load_time or 0,
  }
end

function R.stats()
  local out, lib = {}, {}
  for i, u in ipairs(rules) do out[i] = unit_stats(u) end
  for i, u in ipairs(library_units) do lib[i] = unit_stats(u) end
  return { rules = out, library = lib, heapKb = S.heap_kb() }
end

function R.library_functions()
  local out = {}
  for name, mod in pairs(product) do
    local fns = {}
    for k, v in pairs(mod) do
      if type(v) == "function" then fns[#fns + 1] = tostring(k) end
    end
    S.sort(fns)
    out[#out + 1] = { module = name, functions = fns }
  end
  return out
end

R.full_gc = S.full_gc
return R
