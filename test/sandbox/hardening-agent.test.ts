/**
 * Issue 12, item 5: a rule call longer than the host's call timeout is the
 * rule's fault. Before, the call timed out in the supervisor while the
 * behavior host kept running it; the heartbeat then killed the host, the
 * restarts counted toward a crash loop, and the loop rolled back whatever
 * content was activated recently — here the innocent ProductRulesFeed.
 * Now the host stops the call before the timeout, charges the rule, and the
 * host, its content and the agent's health are untouched.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
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

let vendor: Vendor;
let t: LuaTestAgent;

beforeAll(async () => {
  vendor = await makeVendor();
  const key = testKey();
  await vendor.release(
    "ProductRulesFeed",
    1,
    rulesPayload("ProductRulesFeed", { text: "local M = {} function M.id(s) return s end return M" }, key),
  );
  await vendor.release(
    "Behavior",
    1,
    rulesPayload(
      "Behavior",
      {
        canary: `on("probe", function(e) detect{ title = "canary", n = e.n } end)`,
        // Each up to its full instruction budget of pure VM work per event (0.3–1.5 s depending on
        // the machine, within its own ceiling): eight of them are longer than the host's call
        // timeout on any machine, so the deadline, not the budget, ends the call.
        ...Object.fromEntries(
          Array.from({ length: 8 }, (_, i) => [
            `slow${i + 1}`,
            `on("probe", function(e) for i = 1, 100000000 do end end)`,
          ]),
        ),
      },
      key,
      {
        limits: { instructions: 100_000_000, callMs: 10_000, maxFaults: 3 },
        settings: { sensor: { processes: false, connections: false }, requiresProduct: true },
      },
    ),
  );
  t = await startLuaAgent(vendor, [behaviorHandler, productRulesFeedHandler] as ContentHandler[], {
    key,
    config: {
      // A heartbeat tolerant of a loaded machine: what kills the host before the fix is the call.
      hosts: { callTimeoutSeconds: 3, heartbeatSeconds: 0.5, heartbeatTimeoutSeconds: 5 },
    },
  });
  const report = await t.agent.update();
  expect(report.rejected).toEqual([]);
}, 60_000);

afterAll(async () => {
  await disposeAgent(t);
  vendor?.cleanup();
});

test("a call longer than the host's call timeout faults the rule; no host kill, no rollback", async () => {
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
  expect(canary).toBe(4);

  const stats = (await t.agent.call("Behavior", "stats", {})) as {
    rules: { name: string; faults: number; disabled: boolean; lastError: string | null }[];
  };
  const slow = stats.rules.filter((r) => r.name.startsWith("slow"));
  // How many slow calls fit before the deadline depends on the machine; that the deadline, not the
  // supervisor, ended the calls does not.
  expect(
    slow.some((r) =>
      /time limit exceeded \((\d+ ms left before the host's call timeout|the rule ran)/.test(
        r.lastError ?? "",
      ),
    ),
  ).toBe(true);
  for (const r of slow)
    if (r.faults > 0) expect(r.lastError).toMatch(/time limit exceeded|instruction budget exceeded/);
  expect(disabled.every((d) => d.startsWith("slow"))).toBe(true);
  expect(stats.rules.find((r) => r.name === "canary")?.faults).toBe(0);

  const hostAfter = t.agent.hosts().find((h) => h.group === "behavior");
  expect(hostAfter?.pid).toBe(hostBefore?.pid ?? -1);
  expect(hostAfter?.restarts).toBe(0);
  const status = t.agent.status();
  expect(status.health).toBe("green");
  const versions = Object.fromEntries(status.content.map((c) => [c.type, c.version]));
  expect(versions).toMatchObject({ Behavior: 1, ProductRulesFeed: 1 });
}, 60_000);
