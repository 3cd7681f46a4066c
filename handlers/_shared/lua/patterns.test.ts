/**
 * The metered pattern matcher (matcher.lua) must agree with Lua's own on
 * every result and error, since a rule cannot tell which one ran: a table
 * of patterns covering each feature, run through both, and through
 * find/match/gmatch/gsub.
 */
import { afterAll, expect, test } from "bun:test";
import { LuaSandbox, luaRef } from "./sandbox.ts";

const SUBJECTS = [
  "",
  "hello world",
  "  trim me  ",
  "key=value; other = 2",
  "/usr/bin/curl -s http://x.example/a.sh | sh",
  "THE (quick) [brown] {fox} jumps",
  "aaa bbb aaa",
  "f(a(b)c)d",
  "THE quick 42 foxes, 7 dogs",
  "x\0y\tz\n",
  "éàü ünïcode",
];

const PATTERNS = [
  "o",
  "l+",
  "l*",
  "l-o",
  "o?w",
  "^h",
  "d$",
  "^$",
  "%s+",
  "^%s*(.-)%s*$",
  "(%w+)=(%w+)",
  "(%w+)%s*=%s*(%w+)",
  "%a+",
  "%d+",
  "[%a_][%w_]*",
  "[^%s]+",
  "[a-c]+",
  "[%]]",
  "[^a-z ]",
  "%((.-)%)",
  "%b()",
  "%b[]",
  "%f[%w]%w+",
  "%f[%a]%a+%f[%A]",
  "()a()",
  "(a)(a)%2?",
  "(a+)%s%1",
  "(b+)",
  ".-",
  ".",
  "(.)%1",
  "%.sh",
  "|",
  "[%-%.]",
  "(h)(e)(l)(l)(o)",
  "%x+",
  "%p",
  "%c",
  "%u+",
  "%l+",
  "%S+$",
  "^(%S+)",
  "(()(%w)())",
  "[0-9]+%s*%a+",
  "ü+",
  "[%z]",
  "%z",
  "x%zy",
];

const BAD = ["(", "%", "[a", "%b", "(()", "%1", "a)", "%f", "%g("];

let sb: LuaSandbox;
let probe: number;

const CHUNK = `
local S = ...
local ipairs, pcall, tostring, select = S.ipairs, S.pcall, S.tostring, S.select
local table = { concat = S.concat }
local P = {}
local function pack(ok, ...) return { ok = ok, n = select("#", ...), ... } end
local function render(t)
  local out = { tostring(t.ok) }
  for i = 1, t.n do out[#out + 1] = tostring(t[i]) end
  return table.concat(out, "|")
end
local function both(f, native)
  S.force_metered(true)
  local a = render(pack(pcall(f)))
  S.force_metered(false)
  local b = render(pack(pcall(native)))
  return a, b
end
function P.compare(s, p)
  local rows = {}
  local function add(name, a, b) rows[#rows + 1] = { name = name, metered = a, native = b } end
  for _, init in ipairs({ 1, 3, -2, 40 }) do
    add("find " .. init, both(function() return S.safe_find(s, p, init) end, function() return S.native_find(s, p, init) end))
    add("match " .. init, both(function() return S.safe_match(s, p, init) end, function() return S.native_match(s, p, init) end))
  end
  local function collect(g) local out = {} for a, b, c in g do out[#out + 1] = tostring(a) .. "," .. tostring(b) .. "," .. tostring(c) if #out > 100 then break end end return table.concat(out, ";") end
  add("gmatch", both(function() return collect(S.safe_gmatch(s, p)) end, function() return collect(S.native_gmatch(s, p)) end))
  for _, repl in ipairs({ "<%0>", "%1", "%%", "x%2", "" }) do
    add("gsub " .. repl, both(function() return S.safe_gsub(s, p, repl) end, function() return S.native_gsub(s, p, repl) end))
  end
  add("gsub fn", both(function() return S.safe_gsub(s, p, function(c) return c and (c .. "!") end, 3) end,
    function() return S.native_gsub(s, p, function(c) return c and (c .. "!") end, 3) end))
  add("gsub table", both(function() return S.safe_gsub(s, p, { o = "0", hello = "HI" }) end,
    function() return S.native_gsub(s, p, { o = "0", hello = "HI" }) end))
  return rows
end
return P`;

afterAll(() => sb?.close());

test("metered and native matchers agree on results and errors", async () => {
  sb = await LuaSandbox.create();
  [probe] = sb.runChunkRefs(CHUNK, "=patterns-probe", [luaRef(sb.internals)]) as [number];
  let compared = 0;
  const mismatches: string[] = [];
  for (const s of SUBJECTS) {
    for (const p of [...PATTERNS, ...BAD]) {
      const rows = sb.call(probe, "compare", s, p)[0] as { name: string; metered: string; native: string }[];
      for (const r of rows) {
        compared++;
        // Error texts may differ in their "bad argument" prefix; both must fail.
        const a = r.metered.startsWith("false|") ? "false" : r.metered;
        const b = r.native.startsWith("false|") ? "false" : r.native;
        if (a !== b)
          mismatches.push(
            `${JSON.stringify(s)} ~ ${JSON.stringify(p)} ${r.name}: ${r.metered} vs ${r.native}`,
          );
      }
    }
  }
  expect(mismatches).toEqual([]);
  expect(compared).toBeGreaterThan(5000);
});
