-- Outpost Lua sandbox prelude (trusted). Runs once per Lua state, with the
-- full standard library still loaded, before any content. It captures the
-- few natives the sandbox itself needs into locals, builds the guarded
-- library that content sees, and then empties the global table, so nothing
-- content can name reaches the system: no io, os, package/require, debug,
-- load/loadstring/dofile/loadfile, string.dump or collectgarbage control.
--
-- Resource control, per metered call (see docs/rules.md, "Sandbox"):
--   * instructions: a count hook (every HOOK instructions, also installed on
--     every coroutine content creates) charges the call's budget;
--   * memory: the same hook checks the growth of the heap since the call
--     began; the allocator's hard cap on the whole state (set from JS) stops
--     single huge allocations that happen inside one C function;
--   * time inside C functions, where no hook runs: every string, utf8 and
--     table function content can call is charged instructions by the size of
--     its input (subject x pattern where that is the real cost) before it
--     runs, and the ones whose running time does not follow from their
--     input size are guarded (string.rep, pattern matching, table.sort,
--     table.move);
--   * wall clock: a ceiling per call (checked by the hook and when the call
--     ends) catches whatever the instruction count does not see;
--   * coroutines: creating one is charged the instructions its own hook
--     count could hide, and every resume is charged;
--   * memory per rule: when the state's heap passes its soft limit after a
--     full collection, the rule that holds the most is the one that faults;
--   * output: detections and log lines are charged to the call.
-- Once a call has tripped a limit every protected call inside it re-raises,
-- so content cannot swallow the error with pcall and carry on.
local cfg = ...

local HOOK = cfg.hook_interval
local MAX_STRING = cfg.max_string
local NATIVE_PATTERN_STEPS = cfg.native_pattern_steps
local SORT_MAX = cfg.sort_max
local MOVE_MAX = cfg.move_max
local MAX_RESULTS = cfg.max_results
local STATE_KB = cfg.state_memory_kb

local _G = _G
local native_load = load
local pcall, xpcall, error, type, pairs, next, select = pcall, xpcall, error, type, pairs, next, select
local tostring, tonumber, ipairs, assert = tostring, tonumber, ipairs, assert
local setmetatable, getmetatable, rawget, rawset, rawequal, rawlen = setmetatable, getmetatable, rawget, rawset, rawequal, rawlen
local sethook = debug.sethook
local raw_getmetatable = debug.getmetatable
-- os.clock has 1 ms resolution in this build; the host passes a microsecond clock (ms as a float).
local clock = cfg.now
local cpu = cfg.cpu -- process CPU time outside host functions, ms
local host_ms = cfg.host_ms -- wall-clock ms spent in host functions so far
local getinfo, getupvalue, getlocal = debug.getinfo, debug.getupvalue, debug.getlocal
local gc = collectgarbage
local co_create, co_resume, co_status, co_running = coroutine.create, coroutine.resume, coroutine.status, coroutine.running
local co_yield, co_isyieldable, co_close = coroutine.yield, coroutine.isyieldable, coroutine.close
local s_find, s_match, s_gmatch, s_gsub = string.find, string.match, string.gmatch, string.gsub
local s_rep, s_byte, s_char, s_sub, s_len, s_format = string.rep, string.byte, string.char, string.sub, string.len, string.format
local s_upper, s_lower, s_reverse, s_unpack = string.upper, string.lower, string.reverse, string.unpack
local t_insert, t_remove, t_pack = table.insert, table.remove, table.pack
local t_concat, t_sort, t_move, t_unpack = table.concat, table.sort, table.move, table.unpack
local math_type, floor, huge = math.type, math.floor, math.huge
local u_len, u_codepoint, u_offset, u_char = utf8.len, utf8.codepoint, utf8.offset, utf8.char

-- ---------------------------------------------------------------------------
-- Metering

local m_active = false -- inside a metered call?
local m_left = 0 -- instructions left in the current call
local m_mem0 = 0 -- heap (KiB) when the call began
local m_memcap = 0 -- allowed growth (KiB) during the call; 0 = no check
local m_out = 0 -- output bytes left in the current call
local m_tripped = nil -- the limit the current call exceeded, if any
local m_t0 = 0 -- wall clock (ms) when the call began
local m_ceiling = 0 -- wall-clock ceiling of the current call (ms); 0 = none
local m_cpu0 = 0 -- process CPU time (ms) at the last cpu_mark()
local m_wall0 = 0 -- clock() at the last cpu_mark()
local m_now = 0 -- wall clock when the last call ended
-- collectgarbage("count") costs ~330 ns here, twice per call. Back-to-back
-- calls with no allocation between them (one event's deliveries; dispatch
-- turns this on and says when an event changes the heap) start from the
-- heap the previous call ended with.
local m_reuse = false
local m_heap = nil
local m_host0 = nil -- host_ms() when the call began (units that call host functions)
local m_deadline = 0 -- no call may run past this time (ms, clock()), whatever its own limit; 0 = none

local BUDGET = "instruction budget exceeded"

local function trip(why)
  if not m_tripped then m_tripped = why end
  error(m_tripped, 0)
end

-- Over the wall-clock ceiling. A machine too busy to run the process is not
-- the rule's fault (and must not let load disable detection rules): the
-- call's time is scaled by the share of the wall clock the process got since
-- the last cpu_mark() (a batch, a check), so a CPU-bound rule is stopped once
-- it has used about the ceiling in CPU time. Time in host functions
-- (RepairKit's file and trust functions) is the agent's work, not the rule's.
-- The host's call deadline (set per batch) is plain wall clock: past the
-- host's call timeout the supervisor gives up on the host, busy machine or not.
local function over_time(now)
  if m_deadline > 0 and now > m_deadline then
    return s_format("time limit exceeded (%d ms left before the host's call timeout)", floor(m_deadline - m_t0))
  end
  if m_ceiling <= 0 then return nil end
  local dt = now - m_t0 - (m_host0 and host_ms() - m_host0 or 0)
  local wall = now - m_wall0
  local share = wall > 0 and (cpu() - m_cpu0) / wall or 1
  if share < 1 then dt = dt * share end
  if dt > m_ceiling then return s_format("time limit exceeded (%d ms per call)", floor(m_ceiling)) end
  return nil
end

local invoke, finish, invoke_each -- (below) where a hook must not raise: outside the content's pcall

local function hook()
  if not m_active then return end
  local why = m_tripped
  if not why then
    m_left = m_left - HOOK
    if m_left < 0 then
      why = BUDGET
    elseif m_memcap > 0 and gc("count") - m_mem0 > m_memcap then
      why = "memory limit exceeded"
    else
      local now = clock()
      if (m_ceiling > 0 and now - m_t0 > m_ceiling) or (m_deadline > 0 and now > m_deadline) then
        why = over_time(now)
      end
    end
    if not why then return end
    m_tripped = why
  end
  -- Between the content's return and the end of the meter, raising would
  -- escape the protected call: finish() sees m_tripped instead.
  local f = getinfo(2, "f").func
  if f == invoke or f == finish or f == invoke_each then return end
  error(why, 0)
end
sethook(hook, "", HOOK)

--- Charges `n` instructions to the current call (work a C function is about to do).
local function charge(n)
  m_left = m_left - n
  if m_left < 0 and m_active then trip(BUDGET) end
end

-- A protected call inside content returns normally unless the metered call
-- as a whole is over a limit; then it keeps unwinding.
local function rethrow(ok, ...)
  if m_tripped then error(m_tripped, 0) end
  if not ok and m_active and (...) == "not enough memory" then trip("memory limit exceeded (state)") end
  return ok, ...
end

local function safe_pcall(f, ...)
  return rethrow(pcall(f, ...))
end

-- An error raised by the hook reaches the message handler while Lua still
-- has hooks switched off (it runs inside the hook's error call), so content
-- code must not run there: once the call has tripped, the handler is skipped.
local function safe_xpcall(f, handler, ...)
  if type(handler) ~= "function" then error("bad argument #2 to 'xpcall' (function expected)", 2) end
  return rethrow(xpcall(f, function(e)
    if m_tripped then return e end
    return handler(e)
  end, ...))
end

-- debug.sethook hooks are per thread: a new coroutine would otherwise run
-- unmetered. Its count starts afresh, so up to HOOK - 1 of its instructions
-- are never seen by the hook (a fresh coroutine per resume ran ~35x the
-- budget that way): creating one is charged HOOK up front, and every resume
-- is charged the switch itself.
local RESUME_COST = 50
local function safe_create(f)
  charge(HOOK)
  local co = co_create(f)
  sethook(co, hook, "", HOOK)
  return co
end

local function safe_resume(co, ...)
  charge(RESUME_COST)
  return rethrow(co_resume(co, ...))
end

local function wrap_results(ok, ...)
  if m_tripped then error(m_tripped, 0) end
  if not ok then error((...), 0) end
  return ...
end

local function safe_wrap(f)
  local co = safe_create(f)
  return function(...)
    charge(RESUME_COST)
    return wrap_results(co_resume(co, ...))
  end
end

--- Charges `n` bytes of output to the current call.
local function charge_output(n)
  if not m_active then return end
  m_out = m_out - n
  if m_out < 0 then trip("output limit exceeded") end
end

-- ---------------------------------------------------------------------------
-- Lua patterns. The native matcher backtracks without limit inside one C
-- call, where no hook runs: `string.find(("a"):rep(5000), ".-.-.-b")` would
-- never return. A pattern runs natively only when its worst case on this
-- subject is bounded (NATIVE_PATTERN_STEPS); otherwise it runs on the port
-- of lstrlib's matcher in matcher.lua, in Lua, where every step is metered.

local B = s_byte
local L_ESC, SPECIALS = 37, "^$*+?.([%-"

local function class_end(pat, plen, p)
  local c = B(pat, p)
  p = p + 1
  if c == L_ESC then
    if p > plen then error("malformed pattern (ends with '%')", 0) end
    return p + 1
  elseif c == 91 then -- '['
    if B(pat, p) == 94 then p = p + 1 end
    repeat
      if p > plen then error("malformed pattern (missing ']')", 0) end
      local cc = B(pat, p)
      p = p + 1
      if cc == L_ESC and p <= plen then p = p + 1 end
    until B(pat, p) == 93
    return p + 1
  end
  return p
end

-- Worst-case shape of a pattern: variable-length items (quantifiers, %b,
-- back references) each multiply the work by up to the subject length.
local pattern_cache, pattern_cache_size = {}, 0
local function pattern_info(p, gmatch)
  local key = gmatch and ("\0" .. p) or p
  local info = pattern_cache[key]
  if info then return info end
  local n, i, q, opt, items = #p, 1, 0, 0, 0
  local anchored = not gmatch and B(p, 1) == 94
  if anchored then i = 2 end
  local ok = pcall(function()
    while i <= n do
      local c = B(p, i)
      if c == 40 or c == 41 then
        i = i + 1
      elseif c == 36 and i == n then
        i = i + 1
      elseif c == L_ESC and B(p, i + 1) == 98 then -- %bxy
        q, i, items = q + 1, i + 4, items + 1
      elseif c == L_ESC and B(p, i + 1) == 102 then -- %f[set]
        i = class_end(p, n, i + 2)
      elseif c == L_ESC and (B(p, i + 1) or 0) >= 48 and (B(p, i + 1) or 0) <= 57 then
        q, i, items = q + 1, i + 2, items + 1
      else
        items = items + 1
        local ep = class_end(p, n, i)
        local s = B(p, ep)
        if s == 42 or s == 43 or s == 45 then
          q, i = q + 1, ep + 1
        elseif s == 63 then
          opt, i = opt + 1, ep + 1
        else
          i = ep
        end
      end
    end
  end)
  -- A literal prefix lets the metered matcher jump between candidate starts with a plain search.
  local prefix = ""
  if ok and not anchored then
    local j = 1
    while j <= n do
      local c = s_sub(p, j, j)
      local nx = s_sub(p, j + 1, j + 1)
      if s_find(SPECIALS, c, 1, true) or c == ")" or nx == "*" or nx == "?" or nx == "-" or nx == "+" then break end
      prefix = prefix .. c
      j = j + 1
    end
  end
  -- k: worst-case steps per start position when quantifier-free, else the factor of the '?'s.
  local k = q == 0 and (items + 1) * 2 ^ opt or 2 ^ opt
  info = { ok = ok, q = q, opt = opt, anchored = anchored, prefix = prefix, k = k }
  -- Long patterns are not kept: the cache is shared by every rule, and must not hold their memory.
  if n > 256 then return info end
  if pattern_cache_size >= 512 then pattern_cache, pattern_cache_size = {}, 0 end
  pattern_cache[key] = info
  pattern_cache_size = pattern_cache_size + 1
  return info
end

-- When `info` may run natively on an n-byte subject, charges its worst case
-- before it runs and returns true; false means it must run on the metered
-- matcher. The worst case: each start position tries every item
-- (quantifier-free), or up to n+1 lengths per variable-length item; each '?'
-- doubles it. A step of the C matcher costs about a quarter of a VM
-- instruction (docs/rules.md). One function: this is on every match.
local function native_charged(info, n, lp)
  if not info.ok or NATIVE_PATTERN_STEPS < 0 then return false end
  local q = info.q
  local steps = (info.anchored and 1 or n + 1) * info.k
  if q > 0 then steps = steps * (n + 1) ^ q end
  if (q > 0 or info.opt >= 16) and steps > NATIVE_PATTERN_STEPS then return false end
  m_left = m_left - steps / 4 - (lp >> 4)
  if m_left < 0 and m_active then trip(BUDGET) end
  return true
end

local function check_int(v, name)
  local n = tonumber(v)
  if n == nil or math_type(n) == "float" and n ~= floor(n) then
    error(s_format("bad argument to '%s' (number has no integer representation)", name), 0)
  end
  return floor(n)
end

-- The metered matcher: a port of lstrlib's in Lua (matcher.lua), where every
-- step is VM instructions and so metered.
local matcher = native_load(cfg.matcher_source, "=matcher", "t", {})({
  byte = s_byte, sub = s_sub, find = s_find, char = s_char, upper = s_upper, format = s_format,
  concat = t_concat, unpack = t_unpack, error = error, tostring = tostring, type = type, ipairs = ipairs,
  class_end = class_end, pattern_info = pattern_info,
})
local lua_find, new_state, do_match, captures = matcher.lua_find, matcher.new_state, matcher.do_match, matcher.captures
local add_value, posrelat, next_start = matcher.add_value, matcher.posrelat, matcher.next_start

local function safe_find(s, p, init, plain)
  s, p = tostring(s), tostring(p)
  local ls, lp = #s, #p
  if plain or not s_find(p, "[%^%$%*%+%?%.%(%[%%%-]") then
    -- lmemfind compares up to the whole needle at every start: (n+1)(m+1)
    -- bounds that plus the scan (this is on every plain find: kept short).
    m_left = m_left - ((ls + 1) * (lp + 1) >> 4)
    if m_left < 0 and m_active then trip(BUDGET) end
    return s_find(s, p, init, plain)
  end
  if native_charged(pattern_info(p, false), ls, lp) then return s_find(s, p, init) end
  return lua_find(s, p, init and check_int(init, "find") or 1, true)
end

local function safe_match(s, p, init)
  s, p = tostring(s), tostring(p)
  if native_charged(pattern_info(p, false), #s, #p) then return s_match(s, p, init) end
  return lua_find(s, p, init and check_int(init, "match") or 1, false)
end

local function safe_gmatch(s, p, init)
  s, p = tostring(s), tostring(p)
  local info = pattern_info(p, true)
  -- Every iteration together scans the subject once: charged once, up front.
  if native_charged(info, #s, #p) then return s_gmatch(s, p, init) end
  local ls = #s
  local src = posrelat(init and check_int(init, "gmatch") or 1, ls)
  if src > ls + 1 then src = ls + 2 end
  local ms = new_state(s, p)
  local lastmatch = nil
  return function()
    while src and src <= ls + 1 do
      local cand = next_start(ms, info, src)
      if not cand then
        src = nil
        break
      end
      src = cand
      ms.level, ms.depth = 0, 200
      local e = do_match(ms, src, 1)
      if e and e ~= lastmatch then
        local start = src
        src, lastmatch = e, e
        return captures(ms, start, e, true)
      end
      src = src + 1
    end
    return nil
  end
end

local function safe_gsub(s, p, repl, max_n)
  s, p = tostring(s), tostring(p)
  local tr = type(repl)
  if tr ~= "string" and tr ~= "number" and tr ~= "table" and tr ~= "function" then
    error("bad argument #3 to 'gsub' (string/function/table expected, got " .. tr .. ")", 0)
  end
  local info = pattern_info(p, false)
  if native_charged(info, #s, #p) then
    local r, n = s_gsub(s, p, repl, max_n)
    charge(#r >> 5)
    return r, n
  end
  local ls = #s
  max_n = max_n and check_int(max_n, "gsub") or ls + 1
  local pat = info.anchored and s_sub(p, 2) or p
  local ms = new_state(s, pat)
  local src, lastmatch, n, changed, out = 1, nil, 0, false, {}
  while n < max_n do
    ms.level, ms.depth = 0, 200
    local e = do_match(ms, src, 1)
    if e and e ~= lastmatch then
      n = n + 1
      changed = add_value(ms, out, src, e, repl, tr) or changed
      src, lastmatch = e, e
    elseif src <= ls then
      out[#out + 1] = s_sub(s, src, src)
      src = src + 1
    else
      break
    end
    if info.anchored then break end
  end
  if not changed then return s, n end
  out[#out + 1] = s_sub(s, src)
  return t_concat(out), n
end

-- ---------------------------------------------------------------------------
-- Other C functions whose running time does not follow from their input size.

local function safe_rep(s, n, sep)
  local ls, lsep = s_len(s), sep and s_len(sep) or 0
  n = check_int(n, "rep")
  if n <= 0 then return "" end
  local total = ls * n + lsep * (n - 1)
  if total == 0 then return "" end
  if total > MAX_STRING then
    trip(s_format("string.rep: a %.0f-byte result exceeds the %d-byte limit", total, MAX_STRING))
  end
  charge((total >> 3) + (n >> 6))
  return s_rep(s, n, sep)
end

local function log2(n)
  local l = 1
  while (1 << l) < n do l = l + 1 end
  return l
end

local function safe_sort(t, cmp)
  if type(t) ~= "table" then error("bad argument #1 to 'sort' (table expected)", 0) end
  if getmetatable(t) ~= nil then error("table.sort: tables with metatables are not supported", 0) end
  local n = rawlen(t)
  if n > SORT_MAX then error(s_format("table.sort: more than %d elements", SORT_MAX), 0) end
  if n > 1 then
    -- n log n comparisons; without a comparator they are native, and a string
    -- comparison reads both strings (this scan is itself metered).
    local lg, bytes = log2(n), 0
    if cmp == nil then
      for i = 1, n do
        local v = t[i]
        if type(v) == "string" then bytes = bytes + #v end
      end
    end
    charge(n * lg * 2 + (bytes * lg >> 4))
  end
  return t_sort(t, cmp)
end

local function safe_move(a1, f, e, t, a2)
  f, e = check_int(f, "move"), check_int(e, "move")
  if e >= f and e - f >= MOVE_MAX then error(s_format("table.move: more than %d elements", MOVE_MAX), 0) end
  if e >= f then charge((e - f + 1) * 2) end
  return t_move(a1, f, e, t, a2)
end

-- ---------------------------------------------------------------------------
-- Every other string, utf8 and table function, charged by the size of its
-- input before it runs (or, where the result bounds the work and memory
-- bounds the result, by the size of what it produced). Costs are in VM
-- instructions; one instruction takes ~14 ns in this build, a byte of
-- utf8.len ~2.3 ns, of upper/lower ~1.8 ns, of a copy < 0.3 ns.

-- Positions i..j of an l-byte string, as lstrlib counts them.
local function span(l, i, j)
  if i < 0 then i = l + i + 1 if i < 1 then i = 1 end elseif i == 0 then i = 1 end
  if j < 0 then j = l + j + 1 elseif j > l then j = l end
  return j >= i and j - i + 1 or 0
end

local function too_many(name, n)
  if n > MAX_RESULTS then error(s_format("%s: more than %d results", name, MAX_RESULTS), 0) end
  charge(n)
end

local function safe_byte(s, i, j)
  if j ~= nil then too_many("string.byte", span(s_len(s), check_int(i or 1, "byte"), check_int(j, "byte"))) end
  return s_byte(s, i, j)
end

local function safe_char(...)
  charge(select("#", ...) >> 2)
  return s_char(...)
end

local function safe_format(fmt, ...)
  local r = s_format(fmt, ...)
  charge(#r >> 4)
  return r
end

local function safe_sub(s, i, j)
  local r = s_sub(s, i, j)
  local n = #r
  if n > 64 then charge(n >> 5) end
  return r
end

local function per_byte(f, shift)
  return function(s, ...)
    charge(s_len(s) >> shift)
    return f(s, ...)
  end
end

local function safe_codepoint(s, i, j)
  local l = s_len(s)
  i = i and check_int(i, "codepoint") or 1
  j = j and check_int(j, "codepoint") or i
  local n = span(l, i, j)
  too_many("utf8.codepoint", n)
  charge(n)
  return u_codepoint(s, i, j)
end

local function safe_uchar(...)
  charge(select("#", ...))
  return u_char(...)
end

-- Converting a string reads it more than once (strtod, in this build ~25 ns a byte).
local function safe_tonumber(v, base)
  if type(v) == "string" and #v > 16 then charge(#v * 2) end
  if base == nil then return tonumber(v) end
  return tonumber(v, base)
end

-- #t honours __len, which runs metered; the C loops below then run that many times.
local function safe_concat(t, sep, i, j)
  i = i and check_int(i, "concat") or 1
  j = j and check_int(j, "concat") or #t
  if j >= i then charge((j - i + 1) * 4) end
  local r = t_concat(t, sep, i, j)
  charge(#r >> 5)
  return r
end

local function safe_insert(t, ...)
  if select("#", ...) >= 2 then
    local pos = check_int((...), "insert")
    local n = #t
    if n >= pos then charge((n - pos + 1) * 2) end
  end
  return t_insert(t, ...)
end

local function safe_remove(t, pos)
  if pos ~= nil then
    pos = check_int(pos, "remove")
    local n = #t
    if n >= pos then charge((n - pos + 1) * 2) end
    return t_remove(t, pos)
  end
  return t_remove(t)
end

local function safe_unpack(t, i, j)
  i = i and check_int(i, "unpack") or 1
  j = j and check_int(j, "unpack") or #t
  if j >= i then too_many("table.unpack", j - i + 1) end
  return t_unpack(t, i, j)
end

local function safe_pack(...)
  charge(select("#", ...))
  return t_pack(...)
end

local function safe_setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    -- A finalizer would run at an arbitrary later time, outside any metered call.
    error("setmetatable: __gc metamethods are not available", 0)
  end
  return setmetatable(t, mt)
end

local function safe_collectgarbage(opt)
  if opt == nil or opt == "count" then return gc("count") end
  error("collectgarbage: only 'count' is available", 0)
end

-- ---------------------------------------------------------------------------
-- The library content sees.

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local SAFE_STRING = {
  byte = safe_byte, char = safe_char, find = safe_find, format = safe_format, gmatch = safe_gmatch,
  gsub = safe_gsub, len = s_len, lower = per_byte(s_lower, 2), match = safe_match, rep = safe_rep,
  reverse = per_byte(s_reverse, 3), sub = safe_sub, upper = per_byte(s_upper, 2),
}
local SAFE_TABLE = {
  concat = safe_concat, insert = safe_insert, move = safe_move, pack = safe_pack, remove = safe_remove,
  sort = safe_sort, unpack = safe_unpack,
}
local SAFE_MATH = copy(math)
SAFE_MATH.randomseed = nil -- one generator per state: reseeding would change it for every rule
local SAFE_UTF8 = copy(utf8)
SAFE_UTF8.len = per_byte(u_len, 2)
SAFE_UTF8.offset = per_byte(u_offset, 2)
SAFE_UTF8.codepoint = safe_codepoint
SAFE_UTF8.char = safe_uchar
local SAFE_COROUTINE = {
  create = safe_create, resume = safe_resume, wrap = safe_wrap, yield = co_yield, status = co_status,
  running = co_running, isyieldable = co_isyieldable, close = co_close,
}
local BASE = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = safe_pcall,
  select = select, tonumber = safe_tonumber, tostring = tostring, type = type, xpcall = safe_xpcall,
  rawequal = rawequal, rawget = rawget, rawlen = rawlen, setmetatable = safe_setmetatable,
  getmetatable = getmetatable, collectgarbage = safe_collectgarbage, _VERSION = _VERSION,
}

-- Strings share one metatable: lock it, and send method calls (s:find) to the guarded functions.
local string_mt = getmetatable("")
string_mt.__index = SAFE_STRING
string_mt.__metatable = false

--- A fresh global environment for one piece of content; `extra` adds its API.
local function new_env(extra)
  local env = copy(BASE)
  env.string, env.table, env.math = copy(SAFE_STRING), copy(SAFE_TABLE), copy(SAFE_MATH)
  env.utf8, env.coroutine = copy(SAFE_UTF8), copy(SAFE_COROUTINE)
  if extra then
    for k, v in pairs(extra) do env[k] = v end
  end
  env._G = env
  return env
end

local function readonly_error()
  error("attempt to modify a read-only table", 2)
end

-- Iterating a view hands out its values one by one, never the table behind
-- it: `local _, raw = pairs(view)` used to return the raw event or library
-- table, through which one rule rewrote what the next one saw.
local function view_pairs(v)
  local src = raw_getmetatable(v).__index
  return function(_, k) return next(src, k) end, v, nil
end

local function view_len(v)
  return #raw_getmetatable(v).__index
end

--- A deep read-only view of `t`: an empty table (content has no rawset, and
--- its metatable is locked) whose reads go to `t`, or, when `t` holds tables,
--- to a copy of `t` in which those are views too. One view may be shared by
--- every rule. Writing raises an error in the rule that wrote.
local function readonly(t, memo)
  memo = memo or {}
  local view = memo[t]
  if view then return view end
  local mt = { __newindex = readonly_error, __pairs = view_pairs, __len = view_len, __metatable = false }
  view = setmetatable({}, mt)
  memo[t] = view
  local src = t
  for _, x in next, t do
    if type(x) == "table" then
      src = nil
      break
    end
  end
  if src == nil then
    src = {}
    for k, x in next, t do
      src[k] = type(x) == "table" and readonly(x, memo) or x
    end
    -- A class table's own __index (methods) still answers reads through the view.
    local tmt = raw_getmetatable(t)
    if tmt then setmetatable(src, tmt) end
  end
  mt.__index = src
  return view
end

--- Compiles content source as text (binary chunks are refused) into `env`.
--- Content chunks are named "@name" and trusted ones "=name": the memory
--- accounting below tells content closures from the sandbox's own by that.
local function compile(name, source, env)
  local fn, err = native_load(source, "@" .. name, "t", env)
  if not fn then return nil, err end
  return fn
end

-- ---------------------------------------------------------------------------
-- Metered calls. A unit (a rule, a library module) is a table with its
-- limits and telemetry (times in milliseconds):
--   budget, memcap_kb, output_bytes, max_faults              (limits)
--   calls, time, max_time, faults, disabled, last_error      (telemetry)

local newly_disabled = {}

--- Counts a fault against `unit`; at max_faults it is disabled and, when its
--- runtime registered one, its `release` drops everything it holds.
local function fault(unit, err, limit)
  unit.faults = unit.faults + 1
  unit.last_error = err
  if limit then unit.limit_faults = (unit.limit_faults or 0) + 1 end
  if unit.faults >= unit.max_faults and not unit.disabled then
    unit.disabled = true
    newly_disabled[#newly_disabled + 1] = unit.name
    local release = unit.release
    unit.release, unit.roots = nil, nil
    if release then release() end
  end
end

-- ---------------------------------------------------------------------------
-- Memory per rule. The allocator's cap is shared by the whole state, so a
-- rule hoarding memory across calls would make whichever rule allocates next
-- fail. Above a soft limit (leaving room for two calls' growth below the
-- cap), the end of a call collects garbage; if the heap is still above it,
-- what each rule holds is measured (everything reachable from its globals,
-- reactors and coroutines that the sandbox and the library do not own) and
-- the rule holding the most faults.

local soft_kb = STATE_KB * 3 // 4
local units = setmetatable({}, { __mode = "k" }) -- unit → true, for units whose runtime set `roots`
local shared_roots = {} -- objects no rule is charged for (the library and its views)

local function measure(root, seen)
  local stack, n, bytes = { root }, 1, 0
  while n > 0 do
    local v = stack[n]
    stack[n] = nil
    n = n - 1
    local tv = type(v)
    if (tv == "table" or tv == "function" or tv == "thread" or tv == "string") and not seen[v] then
      seen[v] = true
      if tv == "string" then
        bytes = bytes + 24 + #v
      elseif tv == "table" then
        bytes = bytes + 56
        for k, x in next, v do
          bytes = bytes + 24
          stack[n + 1], stack[n + 2] = k, x
          n = n + 2
        end
        local mt = raw_getmetatable(v)
        if mt then
          n = n + 1
          stack[n] = mt
        end
      elseif tv == "function" then
        local info = getinfo(v, "Su")
        -- Only content closures: the sandbox's own reach every rule.
        if info.what ~= "C" and s_byte(info.source, 1) == 64 then
          bytes = bytes + 40 + 16 * info.nups
          for i = 1, info.nups do
            n = n + 1
            stack[n] = select(2, getupvalue(v, i))
          end
        end
      else
        bytes = bytes + 1024
        for level = 0, 250 do
          local info = getinfo(v, level, "f")
          if not info then break end
          n = n + 1
          stack[n] = info.func
          for i = 1, 255 do
            local name, x = getlocal(v, level, i)
            if not name then break end
            n = n + 1
            stack[n] = x
          end
        end
      end
    end
  end
  return bytes
end

-- Heap (KiB) above which the end of a call reclaims: the soft limit, or
-- higher after a measurement found no rule to blame (a large library is
-- nobody's fault), so a big but legitimate heap is not collected on every call.
local reclaim_kb = nil

local function reclaim()
  gc("collect")
  local heap = gc("count")
  if heap <= soft_kb then
    reclaim_kb = nil
    return
  end
  local seen = {}
  for _, r in ipairs(shared_roots) do measure(r, seen) end
  local worst, worst_bytes = nil, -1
  for unit in next, units do
    if not unit.disabled and unit.roots then
      local b = 0
      for _, r in ipairs(unit.roots) do b = b + measure(r, seen) end
      unit.held_kb = b // 1024
      if b > worst_bytes then worst, worst_bytes = unit, b end
    end
  end
  -- Blame only a rule that holds a real share of the heap (a quarter); otherwise look again once
  -- half of the remaining room is used.
  if not worst or worst_bytes < heap * 256 then
    reclaim_kb = heap + (STATE_KB - heap) // 2
    return
  end
  reclaim_kb = nil
  do
    fault(worst, s_format("memory limit exceeded (state): the rule holds ~%d KiB of a %d KiB heap (soft limit %d KiB)",
      worst_bytes // 1024, floor(heap), soft_kb), true)
    if worst.disabled then gc("collect") end
  end
end

function finish(unit, t0, ok, ...)
  local now = clock()
  local dt = now - t0
  m_active = false
  m_now = now
  local why = m_tripped
  m_tripped = nil
  -- A native function's work after the last hook is seen here.
  local heap = gc("count")
  m_heap = heap
  if ok and not why then
    if m_memcap > 0 and heap - m_mem0 > m_memcap then
      why = "memory limit exceeded"
    elseif (m_ceiling > 0 and dt > m_ceiling) or (m_deadline > 0 and now > m_deadline) then
      why = over_time(now)
    end
    if why then ok = false end
  end
  unit.calls = unit.calls + 1
  unit.time = unit.time + dt
  if dt > unit.max_time then unit.max_time = dt end
  if heap > (reclaim_kb or soft_kb) then
    m_heap = nil
    reclaim()
    -- The collection is the sandbox's work: it must not count as the next call's CPU.
    m_cpu0, m_wall0 = cpu(), clock()
  end
  if ok then return true, ... end
  m_heap = nil
  local err = why or (...)
  -- Never tostring() a content error object here: its __tostring would run unmetered.
  if type(err) ~= "string" then err = "error object (" .. type(err) .. ")" end
  if err == "not enough memory" then err = "memory limit exceeded (state)" end
  if #err > 400 then err = s_sub(err, 1, 400) .. "…" end
  fault(unit, err, why ~= nil)
  return false, err
end

--- Calls fn(...) as `unit`, within its limits. Returns true, results… or false, error.
function invoke(unit, fn, ...)
  if m_active then
    -- Nested (a rule calling a library function): the outer call's meter keeps running.
    return true, fn(...)
  end
  m_left, m_memcap, m_out, m_tripped = unit.budget, unit.memcap_kb, unit.output_bytes, nil
  m_mem0 = m_reuse and m_heap or gc("count")
  m_heap = nil
  m_active = true
  local t0 = clock()
  m_t0 = t0
  m_ceiling = unit.call_ms
  m_host0 = unit.host_calls and host_ms() or nil
  return finish(unit, t0, pcall(fn, ...))
end

-- The error text a fault records: never tostring() a content error object
-- (its __tostring would run unmetered); bounded in length.
local function fault_text(err)
  if type(err) ~= "string" then err = "error object (" .. type(err) .. ")" end
  if err == "not enough memory" then err = "memory limit exceeded (state)" end
  if #err > 400 then err = s_sub(err, 1, 400) .. "…" end
  return err
end

local DEADLINE_EVERY = 8 -- events between wall-clock reads (the hook reads it inside slow ones)

--- Metering per rule per batch: runs step(i) for i = 1..n as `unit` under one
--- meter. Each event still gets the unit's whole instruction budget, output
--- allowance and memory-growth allowance (reset before it), and an error or a
--- tripped limit faults the unit for that event and the next one runs — as
--- `invoke` per event would. What is shared is the clock: read once per batch
--- (and every DEADLINE_EVERY events for the host's deadline) instead of twice
--- per event; the batch's time is charged to the unit once, and its wall-clock
--- ceiling is the unit's per-call ceiling times n. Returns how many events
--- ran, and true when it stopped at the host's deadline.
function invoke_each(unit, n, step)
  if m_active then error("invoke_each inside a metered call", 2) end
  m_memcap = unit.memcap_kb
  local t0 = clock()
  m_t0 = t0
  m_ceiling = unit.call_ms > 0 and unit.call_ms * n or 0
  m_host0 = unit.host_calls and host_ms() or nil
  local heap = m_reuse and m_heap or gc("count")
  local done, late, tripped = 0, false, false
  for i = 1, n do
    if unit.disabled then break end
    m_left, m_out, m_tripped, m_mem0 = unit.budget, unit.output_bytes, nil, heap
    m_active = true
    local ok, err = pcall(step, i)
    m_active = false
    local why = m_tripped
    m_tripped = nil
    heap = gc("count")
    m_heap = heap
    if ok and not why and m_memcap > 0 and heap - m_mem0 > m_memcap then why = "memory limit exceeded" end
    unit.calls = unit.calls + 1
    done = i
    if why then tripped = true end
    if why or not ok then fault(unit, fault_text(why or err), why ~= nil) end
    if heap > (reclaim_kb or soft_kb) then
      m_heap = nil
      reclaim()
      m_cpu0, m_wall0 = cpu(), clock()
      heap = gc("count")
    end
    if m_deadline > 0 and (why or i % DEADLINE_EVERY == 0) and clock() > m_deadline then
      late = true
      break
    end
  end
  local now = clock()
  m_now = now
  local dt = now - t0
  unit.time = unit.time + dt
  if done > 0 and dt / done > unit.max_time then unit.max_time = dt / done end
  -- Native work after the last hook is seen here (as in finish); a deadline trip was charged already.
  if not unit.disabled and not late and not tripped and m_ceiling > 0 and dt > m_ceiling then
    local why = over_time(now)
    if why then fault(unit, fault_text(why), true) end
  end
  return done, late
end

local function new_unit(name, limits)
  local unit = {
    name = name, budget = limits.instructions, memcap_kb = limits.call_memory_kb,
    output_bytes = limits.output_bytes, max_faults = limits.max_faults, call_ms = limits.call_ms or 0,
    host_calls = limits.host_calls,
    calls = 0, time = 0, max_time = 0, faults = 0, limit_faults = 0, disabled = false,
  }
  -- Room for two calls' growth between the soft limit and the cap (a call can overshoot its own until the next hook).
  local soft = STATE_KB - 2 * (unit.memcap_kb or 0)
  if soft < STATE_KB // 4 then soft = STATE_KB // 4 end
  if soft < soft_kb then soft_kb = soft end
  return unit
end

--- Runs a unit's chunk (a rule or module loading). Loading may build tables
--- a call would not, so its wall-clock ceiling is 20x a call's (at least 1 s).
local function invoke_load(unit, fn)
  local c = unit.call_ms
  if c > 0 then unit.call_ms = c * 20 > 1000 and c * 20 or 1000 end
  m_cpu0, m_wall0 = cpu(), clock()
  local ok, res = invoke(unit, fn)
  unit.call_ms = c
  return ok, res
end

--- The objects that make up what `unit` holds (its globals, reactors…); `release` drops them when it is disabled.
local function track(unit, roots, release)
  unit.roots, unit.release = roots, release
  units[unit] = true
end

--- Limits as content declares them (rules.json) → a unit's.
local function to_limits(l)
  return {
    instructions = l.instructions, call_memory_kb = l.callMemoryKb, output_bytes = l.outputBytes,
    max_faults = l.maxFaults, call_ms = l.callMs,
  }
end

--- Loads library modules in order into `lib` (name → the table each returns).
--- A module sees the modules before it as `namespace.<name>`. Returns nil or
--- { name =, message = } for the first failure.
local function load_modules(lib, modules, limits, namespace)
  local units = {}
  for _, m in ipairs(modules) do
    local unit = new_unit(namespace .. ":" .. m.name, limits)
    local fn, err = compile(m.name, m.source, new_env({ [namespace] = readonly(lib) }))
    if not fn then return nil, { name = m.name, message = err } end
    local ok, res = invoke_load(unit, fn)
    if not ok then return nil, { name = m.name, message = res } end
    if type(res) ~= "table" then
      return nil, { name = m.name, message = "a library module must return a table of functions" }
    end
    lib[m.name] = res
    unit.load_time, unit.calls, unit.time, unit.max_time = unit.time, 0, 0, 0
    units[#units + 1] = unit
  end
  return units
end

local function take_disabled()
  local d = newly_disabled
  newly_disabled = {}
  return d
end

-- Nothing global survives for content to find; the sandbox lives on in these upvalues.
local keep = { "_G", "_VERSION" }
for k in pairs(_G) do
  local kept = false
  for _, name in ipairs(keep) do
    if k == name then kept = true end
  end
  if not kept then _G[k] = nil end
end

return {
  new_env = new_env, compile = compile, invoke = invoke, new_unit = new_unit, readonly = readonly,
  load_modules = load_modules, invoke_load = invoke_load, invoke_each = invoke_each, view_pairs = view_pairs, to_limits = to_limits, track = track, fault = fault,
  set_shared = function(list) shared_roots = list end,
  cpu_mark = function() m_cpu0, m_wall0 = cpu(), clock() end,
  -- A batch's deadline caps every call in it (a single call must not outlast the host's call timeout).
  set_call_cap = function(ms) m_deadline = ms and clock() + ms or 0 end,
  reuse_heap = function(on) m_reuse, m_heap = on, nil end,
  heap_changed = function() m_heap = nil end,
  last_now = function() return m_now end,
  soft_limit_kb = function() return soft_kb end,
  charge_output = charge_output, take_disabled = take_disabled, clock = clock,
  is_active = function() return m_active end,
  tripped = function() return m_tripped end,
  heap_kb = function() return gc("count") end,
  full_gc = function() gc("collect") end,
  -- Exposed for tests of the metered matcher against the native one.
  safe_find = safe_find, safe_match = safe_match, safe_gsub = safe_gsub, safe_gmatch = safe_gmatch,
  native_find = s_find, native_match = s_match, native_gsub = s_gsub, native_gmatch = s_gmatch,
  force_metered = function(on) NATIVE_PATTERN_STEPS = on and -1 or cfg.native_pattern_steps end,
  pcall = pcall, error = error, type = type, pairs = pairs, ipairs = ipairs, tostring = tostring,
  setmetatable = setmetatable, select = select, unpack = t_unpack, concat = t_concat, format = s_format,
  byte = s_byte, sub = s_sub, find = s_find, unpack_bytes = s_unpack, next = next,
  raw_getmetatable = raw_getmetatable, load = native_load, floor = floor, huge = huge, math_type = math_type, rawget = rawget, sort = t_sort,
  string_len = s_len, insert = t_insert,
}
