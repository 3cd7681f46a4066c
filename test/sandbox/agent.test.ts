/**
 * The resource bombs again, this time shipped as signed, encrypted Behavior
 * content to an agent whose rules run in their sandboxed `behavior` host
 * process: every bomb is stopped and disabled, the host process is the one
 * that started (no crash, no restart), memory stays bounded, the agent
 * stays green, and the other rules keep detecting.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import type { ContentHandler } from "../../core/handler/contract.ts";
import {
  type LuaTestAgent,
  rulesPayload,
  startLuaAgent,
  testKey,
} from "../../handlers/_shared/lua/testkit.ts";
import { behaviorHandler } from "../../handlers/Behavior/index.ts";
import { productRulesFeedHandler } from "../../handlers/ProductRulesFeed/index.ts";
import { disposeAgent, makeVendor, type Vendor } from "../fixtures/vendor.ts";

// Agents with real host processes: more than the default 5 s on a loaded machine.
setDefaultTimeout(30_000);

const BOMBS: Record<string, string> = {
  loop: "while true do end",
  "pcall-loop": "while true do pcall(function() while true do end end) end",
  doubling: "local s = 'x' while true do s = s .. s end",
  "table-growth": "local t = {} local i = 0 while true do i = i + 1 t[i] = { i } end",
  recursion: "local function f() return 1 + f() end return f()",
  "c-recursion": "local function f(s) return (s:gsub('.', f)) end return f('ab')",
  coroutines: "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
  pattern: "return string.find(string.rep('a', 20000), '.-.-.-b')",
  "rep-huge": "return string.rep('x', 2^40)",
  "output-flood": "while true do detect{ title = string.rep('z', 100) } end",
};

let vendor: Vendor;
let t: LuaTestAgent;

beforeAll(async () => {
  vendor = await makeVendor();
  const key = testKey();
  const rules: Record<string, string> = {
    canary: `on("probe", function(e) detect{ title = "canary", n = e.n } end)`,
  };
  for (const [name, body] of Object.entries(BOMBS)) rules[name] = `on("probe", function(e) ${body} end)`;
  await vendor.release(
    "Behavior",
    1,
    rulesPayload("Behavior", rules, key, {
      limits: { instructions: 2_000_000, callMemoryKb: 8192, stateMemoryMb: 64, maxFaults: 3 },
      settings: { sensor: { processes: false, connections: false } },
    }),
  );
  t = await startLuaAgent(vendor, [behaviorHandler, productRulesFeedHandler] as ContentHandler[], { key });
  const report = await t.agent.update();
  expect(report.rejected).toEqual([]);
});

afterAll(async () => {
  await disposeAgent(t);
  vendor?.cleanup();
});

test("every bomb is stopped and disabled in the sandboxed host; the host, the agent and the canary are fine", async () => {
  const hostBefore = t.agent.hosts().find((h) => h.group === "behavior");
  expect(hostBefore?.isolation).toBe("process");
  const disabled: string[] = [];
  let canary = 0;
  for (let n = 1; n <= 4; n++) {
    const r = (await t.agent.call("Behavior", "inject", { events: [{ type: "probe", n }] })) as {
      detections: { rule: string }[];
      disabled: string[];
    };
    disabled.push(...r.disabled);
    canary += r.detections.filter((d) => d.rule === "canary").length;
  }
  expect(disabled.sort()).toEqual(Object.keys(BOMBS).sort());
  expect(canary).toBe(4);

  const stats = (await t.agent.call("Behavior", "stats", {})) as {
    rules: { name: string; faults: number; disabled: boolean; lastError: string | null }[];
    heapBytes: number;
  };
  for (const name of Object.keys(BOMBS)) {
    const s = stats.rules.find((r) => r.name === name)!;
    expect({ name, faults: s.faults, disabled: s.disabled }).toEqual({ name, faults: 3, disabled: true });
    expect(s.lastError).toMatch(/exceeded|overflow|limit/);
  }
  expect(stats.heapBytes).toBeLessThan(64 * 1024 * 1024);

  const hostAfter = t.agent.hosts().find((h) => h.group === "behavior");
  expect(hostAfter?.pid).toBe(hostBefore?.pid ?? -1);
  expect(hostAfter?.restarts).toBe(0);
  expect(t.agent.status().health).toBe("green");
}, 60_000);
