/**
 * Known Lua sandbox escapes and resource bombs, each run as a Behavior rule
 * next to a canary rule. Every one must end as a counted fault (or a
 * harmless nil), the engine must stay within its memory cap, and the canary
 * must still detect afterwards. docs/rules.md ("Sandbox") lists the
 * mechanism that stops each.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { RuleLimitsSchema } from "../../handlers/_shared/lua/format.ts";
import { BehaviorEngine } from "../../handlers/Behavior/engine.ts";

// callMs high: these bombs must be stopped by the limit each one targets (instructions, memory,
// output), not by the wall-clock ceiling that a loaded machine's GC pauses could trip first.
const limits = RuleLimitsSchema.parse({
  instructions: 200_000,
  callMemoryKb: 1024,
  stateMemoryMb: 32,
  callMs: 10_000,
});
const STATE_CAP = limits.stateMemoryMb * 1024 * 1024;

const CANARY = `on("probe", function(e) detect{ title = "canary", n = e.n } end)`;

const engines: BehaviorEngine[] = [];
afterAll(() => {
  for (const e of engines) e.close();
});

let seq = 0;
/** Runs `body` as the reactor of rule "bomb" for one event; returns its stats and the canary's health. */
interface AttemptOptions {
  setup?: string;
  instructions?: number;
  callMemoryKb?: number;
}

async function attempt(body: string, opts: AttemptOptions = {}) {
  const rule = `${opts.setup ?? ""}
on("probe", function(e)
  local result = (function(e) ${body} end)(e)
  if result ~= nil then detect{ title = "result", value = tostring(result) } end
end)`;
  const engine = await BehaviorEngine.create(
    [
      { name: "bomb", file: "lua/bomb.lua.enc", source: rule },
      { name: "canary", file: "lua/canary.lua.enc", source: CANARY },
    ],
    {
      ...limits,
      instructions: opts.instructions ?? limits.instructions,
      callMemoryKb: opts.callMemoryKb ?? limits.callMemoryKb,
    },
    null,
  );
  engines.push(engine);
  const r = engine.process([{ type: "probe", time: ++seq, n: 1 }]);
  const after = engine.process([{ type: "probe", time: ++seq, n: 2 }]);
  const stats = engine.stats();
  const bomb = stats.rules.find((s) => s.name === "bomb")!;
  return {
    bomb,
    result: r.detections.find((d) => d.rule === "bomb")?.fields.value,
    canaryAlive: after.detections.some((d) => d.rule === "canary" && d.fields.n === 2),
    heap: stats.heapBytes,
  };
}

/** Generous enough that memory (not instructions) is the limit a memory bomb meets first. */
const MANY = 50_000_000;

async function expectContained(body: string, error: RegExp, opts: AttemptOptions = {}) {
  const r = await attempt(body, opts);
  expect(r.bomb.faults).toBeGreaterThanOrEqual(1);
  expect(r.bomb.lastError ?? "").toMatch(error);
  expect(r.canaryAlive).toBe(true);
  expect(r.heap).toBeLessThan(STATE_CAP);
  return r;
}

describe("resource bombs are stopped and counted; the canary keeps running", () => {
  test("infinite loop", () => expectContained("while true do end", /instruction budget exceeded/));
  test("infinite loop that swallows every error with pcall", () =>
    expectContained(
      "while true do pcall(function() while true do end end) end",
      /instruction budget exceeded/,
    ));
  test("xpcall whose message handler loops", () =>
    expectContained(
      "while true do xpcall(function() error('x') end, function() while true do end end) end",
      /instruction budget exceeded/,
    ));
  test("string doubling", () =>
    expectContained("local s = 'x' while true do s = s .. s end", /memory limit exceeded/, {
      instructions: MANY,
    }));
  test("table growth", () =>
    expectContained(
      "local t = {} local i = 0 while true do i = i + 1 t[i] = {i} end",
      /memory limit exceeded/,
      {
        instructions: MANY,
      },
    ));
  test("deep Lua recursion", () =>
    expectContained(
      "local function f(n) return 1 + f(n + 1) end return f(1)",
      /memory limit exceeded|stack overflow/,
    ));
  test("deep recursion through C (gsub callbacks)", () =>
    expectContained(
      "local function f(s) return (s:gsub('.', f)) end return f('aa')",
      /stack overflow|C stack/,
    ));
  test("coroutine bomb: unbounded creation", () =>
    expectContained(
      "local t = {} while true do t[#t + 1] = coroutine.create(function() end) end",
      /memory limit exceeded|instruction budget exceeded/,
    ));
  test("coroutine bomb: the loop runs inside a coroutine", () =>
    expectContained("coroutine.wrap(function() while true do end end)()", /instruction budget exceeded/));
  test("coroutine bomb: each coroutine spins, errors are swallowed by resume", () =>
    expectContained(
      "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
      /instruction budget exceeded/,
    ));
  test("coroutine bomb: nested resumes", () =>
    expectContained(
      "local function f() return coroutine.wrap(f)() end return f()",
      // Each coroutine is charged the instructions its fresh hook count could hide, so the budget may come first.
      /stack overflow|C stack|memory limit|instruction budget exceeded/,
    ));
  test("pathological pattern in string.find", () =>
    expectContained("return string.find(string.rep('a', 5000), '.-.-.-b')", /instruction budget exceeded/));
  test("pathological pattern in gsub and gmatch", async () => {
    await expectContained(
      "return (string.rep('a', 3000)):gsub('(.-)(.-)(.-)x', '%1')",
      /instruction budget exceeded/,
    );
    await expectContained(
      "for m in (string.rep('ab', 2000)):gmatch('(.-a.-b.-)c') do end",
      /instruction budget exceeded/,
    );
  });
  test("string.rep with a huge count, and with an empty string", async () => {
    await expectContained("return string.rep('x', 1e9)", /string\.rep: .* exceeds/);
    await expectContained("return ('x'):rep(1e5):rep(1e5)", /string\.rep: .* exceeds/);
    // The C loop behind rep("", n) would run n times producing nothing; it returns at once.
    const r = await attempt("return #string.rep('', 1e15)");
    expect(r.result).toBe("0");
    expect(r.bomb.faults).toBe(0);
  });
  test("table.move and table.sort over huge ranges", async () => {
    await expectContained("return table.move({}, 1, 1e15, 2)", /table\.move: more than/);
    await expectContained(
      "local t = {} for i = 1, 150000 do t[i] = i end table.sort(t)",
      /table\.sort: more than/,
      {
        instructions: MANY,
        callMemoryKb: 16 * 1024,
      },
    );
  });
  test("a __tostring bomb in an error object is not run outside the meter", () =>
    expectContained(
      "error(setmetatable({}, { __tostring = function() while true do end end }))",
      /error object \(table\)/,
    ));
  test("a to-be-closed variable whose __close spins", () =>
    expectContained(
      "local x <close> = setmetatable({}, { __close = function() while true do end end }) return 1",
      /instruction budget exceeded/,
    ));
  test("output flooding: detections and log lines", async () => {
    await expectContained("for i = 1, 1e6 do detect{ title = 'x', i = i } end", /output limit exceeded/);
    await expectContained("while true do log(string.rep('y', 1000)) end", /output limit exceeded/);
  });
  test("a finalizer (__gc) cannot be installed to run outside any call", () =>
    expectContained("setmetatable({}, { __gc = function() while true do end end })", /__gc metamethods/));
  test("yielding out of a reactor is a fault, not a hang", () =>
    expectContained("coroutine.yield()", /yield/));
  test("a rule that bombs while it loads rejects the rules (nothing half-loaded runs)", async () => {
    await expect(
      BehaviorEngine.create(
        [{ name: "boot", file: "lua/boot.lua.enc", source: "while true do end" }],
        limits,
        null,
      ),
    ).rejects.toThrow(/lua\/boot\.lua\.enc: rule boot failed to load: instruction budget exceeded/);
  });
});

describe("escapes find nothing to escape with", () => {
  test("no system libraries, loaders or debug hooks are reachable", async () => {
    const names = [
      "io",
      "os",
      "require",
      "package",
      "debug",
      "load",
      "loadstring",
      "dofile",
      "loadfile",
      "module",
      "rawset",
      "null",
      "string.dump",
      "string.pack",
      "string.unpack",
      "math.randomseed",
    ];
    const r = await attempt(
      `local out = {}
       for _, n in ipairs({ ${names.map((n) => `"${n}"`).join(", ")} }) do
         local v = _G
         for part in n:gmatch("[^.]+") do v = v and v[part] end
         if v ~= nil then out[#out + 1] = n end
       end
       return table.concat(out, ",") .. "|"`,
    );
    expect(r.result).toBe("|");
  });
  test("the shared string metatable is locked", async () => {
    await expectContained(
      "getmetatable('').__index.upper = function() return 'pwned' end",
      /index a boolean/,
    );
    const r = await attempt("return tostring(getmetatable('abc'))");
    expect(r.result).toBe("false");
  });
  test("collectgarbage offers only 'count'", async () => {
    await expectContained("collectgarbage('stop')", /only 'count'/);
    const r = await attempt("return collectgarbage('count') > 0");
    expect(r.result).toBe("true");
  });
  test("binary chunks cannot be produced or loaded", async () => {
    const r = await attempt("return tostring(string.dump) .. tostring(load)");
    expect(r.result).toBe("nilnil");
  });
  test("a rule changing its library tables or globals changes nothing for other rules", async () => {
    const engine = await BehaviorEngine.create(
      [
        {
          name: "vandal",
          file: "lua/vandal.lua.enc",
          source: `string.find = nil; table.concat = nil; math.floor = nil
                   on("probe", function(e) string.upper = nil end)`,
        },
        {
          name: "victim",
          file: "lua/victim.lua.enc",
          source: `on("probe", function(e)
            detect{ title = "ok", f = tostring(("abc"):find("b")), u = string.upper("x"), c = table.concat({1,2}) }
          end)`,
        },
      ],
      limits,
      null,
    );
    engines.push(engine);
    const r = engine.process([{ type: "probe", time: 1 }]);
    expect(r.detections[0]?.fields).toEqual({ f: "2", u: "X", c: "12" });
  });
  test("events are read-only for rules", async () => {
    await expectContained("e.type = 'other'", /events are read-only/);
    const r = await attempt("local n = 0 for k, v in pairs(e) do n = n + 1 end return n .. ':' .. e.type");
    expect(r.result).toBe("3:probe");
  });
  test("the JS side is out of reach: no proxies, no userdata", async () => {
    const r = await attempt(
      `local seen = {}
       for k, v in pairs(_G) do
         local t = type(v)
         if t ~= "table" and t ~= "function" and t ~= "string" then seen[#seen + 1] = k .. ":" .. t end
       end
       return table.concat(seen, ",") .. "|"`,
    );
    expect(r.result).toBe("|");
  });
});
