/**
 * Issue 12, items 1–4: the attacks that got past the Lua sandbox, each
 * reproduced as the issue describes it, at engine level (the rules in one
 * Lua state, as in the behavior host). Item 5 (a call longer than the host's
 * call timeout) is in hardening-agent.test.ts, against a real host process.
 * docs/rules.md ("Sandbox") describes what each one now meets.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { type LibraryModules, type RuleLimits, RuleLimitsSchema } from "../../handlers/_shared/lua/format.ts";
import { BehaviorEngine, type EngineOptions } from "../../handlers/Behavior/engine.ts";

const BASE = RuleLimitsSchema.parse({ instructions: 200_000, callMemoryKb: 4096, stateMemoryMb: 32 });

const engines: BehaviorEngine[] = [];
afterAll(() => {
  for (const e of engines) e.close();
});

const LIBRARY_TEXT = `
local M = {}
function M.has_any(s, list)
  for i = 1, #list do
    if string.find(s, list[i], 1, true) then return true end
  end
  return false
end
M.SHELLS = { sh = true, bash = true }
return M`;

function library(): LibraryModules {
  return {
    version: 1,
    modules: [{ name: "text", file: "lua/text.lua.enc", source: LIBRARY_TEXT }],
    limits: RuleLimitsSchema.parse({}),
  };
}

async function engine(
  rules: Record<string, string>,
  limits: Partial<RuleLimits> = {},
  opts: { library?: boolean } & EngineOptions = {},
): Promise<BehaviorEngine> {
  const e = await BehaviorEngine.create(
    Object.entries(rules).map(([name, source]) => ({ name, file: `lua/${name}.lua.enc`, source })),
    { ...BASE, ...limits },
    opts.library ? library() : null,
    opts,
  );
  engines.push(e);
  return e;
}

function stat(e: BehaviorEngine, rule: string) {
  const s = e.stats().rules.find((r) => r.name === rule);
  if (!s) throw new Error(`no rule ${rule}`);
  return s;
}

describe("item 1: a rule cannot change what other rules see", () => {
  // Each vandal is loaded before the victim, so it runs first on every event.
  const VANDALS: Record<string, string> = {
    "pairs-event": `local _, raw = pairs(e) raw.cmdline = "rm -rf /"`,
    "pairs-library-module": `local _, raw = pairs(product.text) raw.has_any = function() return true end`,
    "pairs-library-root": `local _, raw = pairs(product) raw.text = { has_any = function() return true end }`,
    "nested-library-table": `product.text.SHELLS.evil = true`,
    "pairs-nested-library-table": `local _, raw = pairs(product.text.SHELLS) raw.evil = true`,
    "setmetatable-event": `setmetatable(e, nil) e.cmdline = "rm -rf /"`,
    "getmetatable-library": `getmetatable(product.text).__index.has_any = function() return true end`,
    "rawset-event": `rawset(e, "cmdline", "rm -rf /")`,
    "table-insert-event": `table.insert(e, "x")`,
    "next-event": `local k, v = next(e) if k then error("next() reached the raw event: " .. k) end e.cmdline = "x"`,
  };
  const VICTIM = `on("probe", function(e)
    detect{ title = "seen", cmdline = e.cmdline, has = product.text.has_any(e.cmdline, { "zzz" }),
            evil = product.text.SHELLS.evil == true, n = #e }
  end)`;

  test("every trick faults the rule that tried it, and the next rule sees the original event and library", async () => {
    const rules: Record<string, string> = {};
    for (const [name, body] of Object.entries(VANDALS)) rules[name] = `on("probe", function(e) ${body} end)`;
    rules.victim = VICTIM;
    const e = await engine(rules, {}, { library: true });
    const r = e.process([{ type: "probe", time: 1, cmdline: "ls -l" }]);
    const seen = r.detections.filter((d) => d.rule === "victim");
    expect(seen.map((d) => d.fields)).toEqual([{ cmdline: "ls -l", has: false, evil: false, n: 0 }]);
    for (const name of Object.keys(VANDALS)) {
      const s = stat(e, name);
      expect({ name, faults: s.faults }).toEqual({ name, faults: 1 });
      expect(s.lastError ?? "").toMatch(/read-only|protected metatable|index a boolean|call a nil value/);
    }
  });

  test("iterating a read-only view still yields its fields (and never the table behind it)", async () => {
    const e = await engine(
      {
        reader: `on("probe", function(e)
          local keys, leaked = {}, false
          for k, v in pairs(e) do keys[#keys + 1] = k end
          local f, s = pairs(e)
          leaked = rawequal(s, e) == false
          local fns = {}
          for k in pairs(product.text) do fns[#fns + 1] = k end
          table.sort(keys) table.sort(fns)
          detect{ title = "keys", keys = table.concat(keys, ","), fns = table.concat(fns, ","), leaked = leaked }
        end)`,
      },
      {},
      { library: true },
    );
    const r = e.process([{ type: "probe", time: 1, cmdline: "ls" }]);
    expect(r.detections[0]?.fields).toEqual({
      keys: "cmdline,time,type",
      fns: "SHELLS,has_any",
      leaked: false,
    });
  });
});

describe("item 2: every C function is charged for its work", () => {
  // Each of these ran seconds inside one native call with no fault.
  const NATIVE: Record<string, string> = {
    "plain find, 64 KiB needle in a 128 KiB subject": `return string.find(string.rep("a", 131072), string.rep("a", 65535) .. "b", 1, true)`,
    "quantifier-free pattern": `return string.find(string.rep("a", 131072), string.rep(".", 32768) .. "b")`,
    "quantifier-free pattern through match and gsub": `return string.match(string.rep("a", 131072), string.rep("%a", 16384) .. "b")`,
  };
  for (const [name, body] of Object.entries(NATIVE)) {
    test(name, async () => {
      // A budget that lets the (metered) parse of a long pattern finish, as a raised content limit may.
      const e = await engine({ bomb: `on("probe", function(e) ${body} end)` }, { instructions: 10_000_000 });
      const t0 = performance.now();
      e.process([{ type: "probe", time: 1 }]);
      const ms = performance.now() - t0;
      const s = stat(e, "bomb");
      expect(s.faults).toBe(1);
      // Charged before the native call runs (or, for a long pattern, its metered parse meets the ceiling first).
      expect(s.lastError ?? "").toMatch(/instruction budget exceeded|time limit exceeded/);
      // Refused before it ran: nowhere near the seconds the native call takes.
      expect(ms).toBeLessThan(2000);
    }, 30_000);
  }

  test("utf8.len on a 64 KiB string in a loop costs instructions by the byte", async () => {
    const e = await engine({
      bomb: `n = 0
      on("probe", function(e)
        if e.n == 1 then
          local s = string.rep("\\xc3\\xa9", 32768)
          while true do utf8.len(s) n = n + 1 end
        end
        detect{ title = "loops", n = n }
      end)`,
    });
    e.process([{ type: "probe", time: 1, n: 1 }]);
    const r = e.process([{ type: "probe", time: 2, n: 2 }]);
    const loops = Number(r.detections[0]?.fields.n);
    expect(stat(e, "bomb").lastError ?? "").toMatch(/instruction budget exceeded/);
    // 64 KiB per call at 2.3 ns a byte is ~10,000 instructions' worth: the budget allows ~20 of them.
    expect(loops).toBeGreaterThan(0);
    expect(loops * 65536 * 2.3).toBeLessThan(BASE.instructions * 14 * 2);
  });

  test("other string, utf8 and table functions are charged by size too", async () => {
    const bodies = [
      `local s = string.rep("x", 1024 * 1024) while true do s:upper() end`,
      `local s = string.rep("x", 1024 * 1024) while true do s:sub(2) end`,
      `local s = string.rep("1", 1000) while true do tonumber(s) end`,
      `local s = string.rep("x", 4096) while true do s:rep(64) end`,
      `local t = {} for i = 1, 5000 do t[i] = "abcdefgh" end while true do table.concat(t) end`,
      `local t = {} for i = 1, 5000 do t[i] = i end while true do table.insert(t, 1, 0) table.remove(t, 1) end`,
      `local s = string.rep("\\xc3\\xa9", 32768) while true do utf8.offset(s, -1) end`,
    ];
    for (const body of bodies) {
      const e = await engine(
        {
          bomb: `n = 0 on("probe", function(e)
          if e.n == 1 then ${body.replace("while true do", "while true do n = n + 1")} end
          detect{ title = "loops", n = n } end)`,
        },
        // The wall-clock ceiling is lifted so that on a loaded machine (a second suite alongside)
        // it cannot fire first: this test is about the instruction charge alone.
        { instructions: 1_000_000, callMemoryKb: 16 * 1024, callMs: 10_000 },
      );
      e.process([{ type: "probe", time: 1, n: 1 }]);
      const loops = Number(e.process([{ type: "probe", time: 2, n: 2 }]).detections[0]?.fields.n);
      expect({ body, error: stat(e, "bomb").lastError }).toEqual({
        body,
        error: "instruction budget exceeded",
      });
      // Each loop is a handful of VM instructions; charged by size, far fewer loops fit in the budget.
      expect({ body, few: loops < 1_000_000 / 50 }).toEqual({ body, few: true });
    }
  }, 30_000);

  test("table.unpack and string.byte return at most 8,000 values", async () => {
    const e = await engine({
      a: `on("probe", function(e) local t = {} for i = 1, 10000 do t[i] = i end return table.unpack(t) end)`,
      b: `on("probe", function(e) return string.byte(string.rep("x", 10000), 1, -1) end)`,
    });
    e.process([{ type: "probe", time: 1 }]);
    expect(stat(e, "a").lastError ?? "").toMatch(/table\.unpack: more than 8000 results/);
    expect(stat(e, "b").lastError ?? "").toMatch(/string\.byte: more than 8000 results/);
  });

  test("a wall-clock ceiling per call faults the rule (default 50 ms, configurable); three faults disable it", async () => {
    expect(RuleLimitsSchema.parse({}).callMs).toBe(50);
    const spin = `on("probe", function(e) while true do end end)`;
    // Enough instructions for seconds of work: only the clock stops it.
    const e = await engine(
      { spin, canary: `on("probe", function(e) detect{ title = "ok" } end)` },
      {
        instructions: 100_000_000,
      },
    );
    const disabled: string[] = [];
    let canary = 0;
    for (let n = 1; n <= 3; n++) {
      const r = e.process([{ type: "probe", time: n }]);
      disabled.push(...r.disabled);
      canary += r.detections.length;
    }
    const s = stat(e, "spin");
    expect(s.lastError).toBe("time limit exceeded (50 ms per call)");
    expect(s.faults).toBe(3);
    expect(disabled).toEqual(["spin"]);
    expect(canary).toBe(3);
    expect(s.maxMs).toBeLessThan(2000);

    const f = await engine({ spin }, { instructions: 100_000_000, callMs: 20 });
    f.process([{ type: "probe", time: 1 }]);
    expect(stat(f, "spin").lastError).toBe("time limit exceeded (20 ms per call)");
  }, 30_000);
});

describe("item 3: no uncharged instructions", () => {
  test("a fresh coroutine per resume does not escape the instruction budget", async () => {
    const e = await engine(
      {
        bomb: `count = 0
      on("probe", function(e)
        if e.n == 1 then
          while true do
            coroutine.resume(coroutine.create(function() for i = 1, 300 do end count = count + 1 end))
          end
        end
        detect{ title = "count", count = count }
      end)`,
      },
      // The instruction budget must end it, not the default 50 ms clock on a loaded machine.
      { instructions: BASE.instructions, callMs: 10_000 },
    );
    e.process([{ type: "probe", time: 1, n: 1 }]);
    const count = Number(e.process([{ type: "probe", time: 2, n: 2 }]).detections[0]?.fields.count);
    expect(stat(e, "bomb").lastError ?? "").toMatch(/instruction budget exceeded/);
    // Each coroutine ran ~300 loop instructions; together no more than the budget.
    expect(count).toBeGreaterThan(0);
    expect(count * 300).toBeLessThanOrEqual(BASE.instructions);
  });

  test("coroutine.wrap generators still work, each resume charged", async () => {
    const e = await engine(
      {
        gen: `on("probe", function(e)
        local gen = coroutine.wrap(function() for i = 1, 1000 do coroutine.yield(i) end end)
        local sum = 0
        for _ = 1, 1000 do sum = sum + gen() end
        detect{ title = "sum", sum = sum }
      end)`,
      },
      // Instructions are what this checks; a roomy clock keeps a loaded machine (a second copy of
      // the suite beside this one) from ending the call at the default 50 ms instead.
      { instructions: BASE.instructions, callMs: 10_000 },
    );
    const r = e.process([{ type: "probe", time: 1 }]);
    expect(r.detections[0]?.fields.sum).toBe(500500);
    expect(stat(e, "gen").faults).toBe(0);
  });
});

describe("item 4: memory is accounted per rule", () => {
  test("the rule that hoards memory toward the state cap is the one that faults, not the rule that allocates next", async () => {
    const e = await engine(
      {
        hoarder: `local keep = {}
        on("probe", function(e) keep[#keep + 1] = string.rep("h", 256 * 1024 - 8) .. e.n end)`,
        // Allocates more per call than the hoarder, but keeps nothing.
        innocent: `on("probe", function(e)
        local a, b = string.rep("v", 768 * 1024), string.rep("w", 768 * 1024)
        detect{ title = "ok", n = e.n, len = #a + #b }
      end)`,
      },
      // The wall-clock ceiling is item 2's subject; a loaded machine's GC pauses must not stand in here.
      { instructions: 1_000_000, callMs: 10_000 },
    );
    let innocentDetections = 0;
    const disabled: string[] = [];
    for (let n = 1; n <= 200; n++) {
      const r = e.process([{ type: "probe", time: n, n }]);
      innocentDetections += r.detections.filter((d) => d.rule === "innocent").length;
      disabled.push(...r.disabled);
    }
    const hoarder = stat(e, "hoarder");
    const innocent = stat(e, "innocent");
    expect(innocent.lastError).toBeNull();
    expect(innocentDetections).toBe(200);
    expect(disabled).toEqual(["hoarder"]);
    expect(hoarder.lastError ?? "").toMatch(/memory limit exceeded \(state\): the rule holds/);
    // Disabling it released what it held.
    expect(e.heapBytes()).toBeLessThan(16 * 1024 * 1024);
  }, 30_000);

  test("a large library is nobody's fault: no rule is blamed for memory it does not hold", async () => {
    const big: LibraryModules = {
      version: 1,
      modules: [
        {
          name: "text",
          file: "lua/text.lua.enc",
          source: `local M = { big = {} }
            for i = 1, 100 do M.big[i] = string.rep("x", 256 * 1024) end
            return M`,
        },
      ],
      limits: RuleLimitsSchema.parse({ instructions: 10_000_000, callMemoryKb: 64 * 1024 }),
    };
    const e = await BehaviorEngine.create(
      [
        {
          name: "reader",
          file: "lua/reader.lua.enc",
          source: `on("probe", function(e) detect{ title = "ok", n = #product.text.big } end)`,
        },
      ],
      BASE,
      big,
    );
    engines.push(e);
    let seen = 0;
    for (let n = 1; n <= 30; n++) seen += e.process([{ type: "probe", time: n }]).detections.length;
    expect(seen).toBe(30);
    expect(stat(e, "reader").faults).toBe(0);
    expect(e.heapBytes()).toBeGreaterThan(24 * 1024 * 1024);
  }, 30_000);

  test("a call that grows the heap past its limit in one native call faults when it ends", async () => {
    // One concatenation, then the call returns before any hook runs.
    const e = await engine({
      big: `on("probe", function(e) local s = string.rep("x", 512 * 1024) keep = s .. s .. s .. s .. s .. s .. s .. s .. s end)`,
    });
    e.process([{ type: "probe", time: 1 }]);
    expect(stat(e, "big").lastError ?? "").toMatch(/^memory limit exceeded$/);
  });
});

describe("item 5 (engine): a batch stops before the host's call timeout", () => {
  test("a rule slow on every event is faulted at the deadline and the rest of the call is skipped", async () => {
    const e = await engine(
      {
        slow: `on("probe", function(e) for i = 1, 2000000 do end end)`,
        canary: `on("probe", function(e) detect{ title = "ok" } end)`,
      },
      // The per-call ceiling out of the way: only the deadline stops it.
      { instructions: 100_000_000, callMs: 10_000 },
      { deadlineMs: 300 },
    );
    const events = Array.from({ length: 400 }, (_, i) => ({ type: "probe", time: i + 1 }));
    const t0 = performance.now();
    const r = e.process(events);
    const ms = performance.now() - t0;
    expect(r.skipped).toBeGreaterThan(0);
    expect(r.delivered + r.skipped).toBe(400);
    const s = stat(e, "slow");
    expect(s.faults).toBe(1);
    expect(s.lastError ?? "").toMatch(
      // The call that crosses the deadline is stopped there; or, between calls, the rule that used most of the batch.
      /time limit exceeded \((\d+ ms left before the host's call timeout|the rule ran \d+ ms of a batch that may take \d+ ms)\)/,
    );
    expect(stat(e, "canary").faults).toBe(0);
    // One slow call past the deadline at most, not 400 of them.
    expect(ms).toBeLessThan(10_000);
  }, 30_000);
});
