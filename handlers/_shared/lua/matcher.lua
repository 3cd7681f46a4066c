-- The metered Lua pattern matcher: a port of lstrlib's matcher (Lua 5.4)
-- to Lua, used by the sandbox (prelude.lua) for patterns whose worst case on
-- their subject is too large to run natively in one unmetered C call. Every
-- step here is VM instructions, so the instruction budget and the wall-clock
-- ceiling apply. Results match the native matcher's
-- (handlers/_lua/patterns.test.ts compares both on ~6,000 cases).
-- Trusted: loaded by the prelude with the natives it needs and no globals.
local K = ...
local B, s_sub, s_find, s_char, s_upper, s_format = K.byte, K.sub, K.find, K.char, K.upper, K.format
local t_concat, t_unpack = K.concat, K.unpack
local error, tostring, type, ipairs = K.error, K.tostring, K.type, K.ipairs
local class_end, pattern_info = K.class_end, K.pattern_info
local L_ESC = 37

local do_match

-- Character classes, computed once with the native matcher on single bytes.
local CLASS = {}
for _, l in ipairs({ "a", "c", "d", "g", "l", "p", "s", "u", "w", "x", "z" }) do
  local yes, no = {}, {}
  for c = 0, 255 do
    local m = s_find(s_char(c), "%" .. l) ~= nil
    yes[c], no[c] = m, not m
  end
  CLASS[B(l)], CLASS[B(s_upper(l))] = yes, no
end

local function match_class(c, cl)
  local t = CLASS[cl]
  if t then return t[c] end
  return cl == c
end

local function match_bracket(c, pat, p, ec)
  local sig = true
  if B(pat, p + 1) == 94 then
    sig = false
    p = p + 1
  end
  while true do
    p = p + 1
    if p >= ec then break end
    local pc = B(pat, p)
    if pc == L_ESC then
      p = p + 1
      if match_class(c, B(pat, p)) then return sig end
    elseif B(pat, p + 1) == 45 and p + 2 < ec then
      p = p + 2
      if pc <= c and c <= B(pat, p) then return sig end
    elseif pc == c then
      return sig
    end
  end
  return not sig
end

local function single_match(ms, s, p, ep)
  if s > ms.slen then return false end
  local c = B(ms.src, s)
  local pc = B(ms.pat, p)
  if pc == 46 then
    return true
  elseif pc == L_ESC then
    return match_class(c, B(ms.pat, p + 1))
  elseif pc == 91 then
    return match_bracket(c, ms.pat, p, ep - 1)
  end
  return pc == c
end

local CAP_UNFINISHED, CAP_POSITION = -1, -2

local function max_expand(ms, s, p, ep)
  local i = 0
  while single_match(ms, s + i, p, ep) do i = i + 1 end
  while i >= 0 do
    local res = do_match(ms, s + i, ep + 1)
    if res then return res end
    i = i - 1
  end
  return nil
end

local function min_expand(ms, s, p, ep)
  while true do
    local res = do_match(ms, s, ep + 1)
    if res then return res end
    if single_match(ms, s, p, ep) then
      s = s + 1
    else
      return nil
    end
  end
end

local function start_capture(ms, s, p, what)
  local level = ms.level
  if level >= 32 then error("too many captures", 0) end
  ms.cinit[level], ms.clen[level] = s, what
  ms.level = level + 1
  local res = do_match(ms, s, p)
  if not res then ms.level = ms.level - 1 end
  return res
end

local function end_capture(ms, s, p)
  local l = ms.level - 1
  while l >= 0 and ms.clen[l] ~= CAP_UNFINISHED do l = l - 1 end
  if l < 0 then error("invalid pattern capture", 0) end
  ms.clen[l] = s - ms.cinit[l]
  local res = do_match(ms, s, p)
  if not res then ms.clen[l] = CAP_UNFINISHED end
  return res
end

local function check_capture(ms, l)
  l = l - 49
  if l < 0 or l >= ms.level or ms.clen[l] == CAP_UNFINISHED then
    error(s_format("invalid capture index %%%d", l + 1), 0)
  end
  return l
end

local function match_capture(ms, s, l)
  l = check_capture(ms, l)
  local len = ms.clen[l]
  if ms.slen - s + 1 >= len and s_sub(ms.src, ms.cinit[l], ms.cinit[l] + len - 1) == s_sub(ms.src, s, s + len - 1) then
    return s + len
  end
  return nil
end

local function match_balance(ms, s, p)
  if p >= ms.plen then error("malformed pattern (missing arguments to '%b')", 0) end
  if B(ms.src, s) ~= B(ms.pat, p) then return nil end
  local b, e, cont = B(ms.pat, p), B(ms.pat, p + 1), 1
  s = s + 1
  while s <= ms.slen do
    local c = B(ms.src, s)
    if c == e then
      cont = cont - 1
      if cont == 0 then return s + 1 end
    elseif c == b then
      cont = cont + 1
    end
    s = s + 1
  end
  return nil
end

do_match = function(ms, s, p)
  ms.depth = ms.depth - 1
  if ms.depth == 0 then error("pattern too complex", 0) end
  local pat, plen = ms.pat, ms.plen
  while true do
    if p > plen then break end
    local pc = B(pat, p)
    local dflt = false
    if pc == 40 then -- '('
      if B(pat, p + 1) == 41 then
        s = start_capture(ms, s, p + 2, CAP_POSITION)
      else
        s = start_capture(ms, s, p + 1, CAP_UNFINISHED)
      end
      break
    elseif pc == 41 then -- ')'
      s = end_capture(ms, s, p + 1)
      break
    elseif pc == 36 and p == plen then -- '$' at the end
      if s ~= ms.slen + 1 then s = nil end
      break
    elseif pc == L_ESC then
      local nx = B(pat, p + 1)
      if nx == 98 then -- %b
        s = match_balance(ms, s, p + 2)
        if not s then break end
        p = p + 4
      elseif nx == 102 then -- %f
        p = p + 2
        if B(pat, p) ~= 91 then error("missing '[' after '%f' in pattern", 0) end
        local ep = class_end(pat, plen, p)
        local prev = (s == ms.init0) and 0 or B(ms.src, s - 1)
        local cur = B(ms.src, s) or 0
        if not match_bracket(prev, pat, p, ep - 1) and match_bracket(cur, pat, p, ep - 1) then
          p = ep
        else
          s = nil
          break
        end
      elseif nx and nx >= 48 and nx <= 57 then -- back reference
        s = match_capture(ms, s, nx)
        if not s then break end
        p = p + 2
      else
        dflt = true
      end
    else
      dflt = true
    end
    if dflt then
      local ep = class_end(pat, plen, p)
      local epc = B(pat, ep)
      if not single_match(ms, s, p, ep) then
        if epc == 42 or epc == 63 or epc == 45 then
          p = ep + 1
        else
          s = nil
          break
        end
      else
        if epc == 63 then -- '?'
          local res = do_match(ms, s + 1, ep + 1)
          if res then
            s = res
            break
          end
          p = ep + 1
        elseif epc == 43 then -- '+'
          s = max_expand(ms, s + 1, p, ep)
          break
        elseif epc == 42 then -- '*'
          s = max_expand(ms, s, p, ep)
          break
        elseif epc == 45 then -- '-'
          s = min_expand(ms, s, p, ep)
          break
        else
          s, p = s + 1, ep
        end
      end
    end
  end
  ms.depth = ms.depth + 1
  return s
end

local function new_state(src, pat)
  return { src = src, slen = #src, pat = pat, plen = #pat, level = 0, cinit = {}, clen = {}, depth = 200, init0 = 1 }
end

local function get_capture(ms, i, s, e)
  if i >= ms.level then
    if i ~= 0 then error(s_format("invalid capture index %%%d", i + 1), 0) end
    return s_sub(ms.src, s, e - 1)
  end
  local l = ms.clen[i]
  if l == CAP_UNFINISHED then error("unfinished capture", 0) end
  if l == CAP_POSITION then return ms.cinit[i] end
  return s_sub(ms.src, ms.cinit[i], ms.cinit[i] + l - 1)
end

local function captures(ms, s, e, whole)
  local n = (ms.level == 0 and whole) and 1 or ms.level
  local out = {}
  for i = 0, n - 1 do out[i + 1] = get_capture(ms, i, s, e) end
  return t_unpack(out, 1, n)
end

local function posrelat(pos, len)
  if pos > 0 then return pos end
  if pos == 0 then return 1 end
  if pos < -len then return 1 end
  return len + pos + 1
end

-- Next candidate start at or after `s1`, using the literal prefix when there is one.
local function next_start(ms, info, s1)
  if info.prefix == "" then return s1 end
  return s_find(ms.src, info.prefix, s1, true)
end

local function lua_find(s, p, init, find)
  local ls = #s
  init = posrelat(init, ls)
  if init > ls + 1 then return nil end
  local info = pattern_info(p, false)
  local pat = info.anchored and s_sub(p, 2) or p
  local ms = new_state(s, pat)
  local s1 = init
  while true do
    s1 = next_start(ms, info, s1)
    if not s1 then return nil end
    ms.level, ms.depth = 0, 200
    local e = do_match(ms, s1, 1)
    if e then
      if find then return s1, e - 1, captures(ms, nil, nil, false) end
      return captures(ms, s1, e, true)
    end
    s1 = s1 + 1
    if info.anchored or s1 > ls + 1 then return nil end
  end
end

local function add_value(ms, out, s, e, repl, tr)
  local v
  if tr == "function" then
    v = repl(captures(ms, s, e, true))
  elseif tr == "table" then
    v = repl[get_capture(ms, 0, s, e)]
  else
    local r = tostring(repl)
    local i, parts = 1, {}
    while i <= #r do
      local c = s_sub(r, i, i)
      if c == "%" then
        i = i + 1
        local d = s_sub(r, i, i)
        if d == "%" then
          parts[#parts + 1] = "%"
        elseif d ~= "" and s_find(d, "%d") then
          parts[#parts + 1] = d == "0" and s_sub(ms.src, s, e - 1) or tostring(get_capture(ms, B(d) - 49, s, e))
        else
          error("invalid use of '%' in replacement string", 0)
        end
      else
        parts[#parts + 1] = c
      end
      i = i + 1
    end
    out[#out + 1] = t_concat(parts)
    return true
  end
  if not v then
    out[#out + 1] = s_sub(ms.src, s, e - 1)
    return false
  end
  local tv = type(v)
  if tv ~= "string" and tv ~= "number" then error("invalid replacement value (a " .. tv .. ")", 0) end
  out[#out + 1] = tostring(v)
  return true
end

return {
  lua_find = lua_find, new_state = new_state, do_match = do_match, captures = captures, add_value = add_value,
  posrelat = posrelat, next_start = next_start,
}
