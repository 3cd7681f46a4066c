/**
 * A handler method declared longer than hosts.callTimeoutSeconds
 * (manifest.callTimeoutSeconds) keeps its own IPC budget — what lets
 * `agent handlers call ScheduledQueryPack run` wait for a query bounded by
 * its wall limit — while other methods keep the global one.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { scheduledQueryPackHandler } from "../../handlers/ScheduledQueryPack/index.ts";
import { MAX_WALL_SECONDS } from "../../handlers/ScheduledQueryPack/settings.ts";
import { disposeAgent, makeVendor, startAgent, type TestAgent, type Vendor } from "../fixtures/vendor.ts";
import { hostTestRegistry } from "./handlers.ts";

let vendor: Vendor;
let t: TestAgent | undefined;
beforeEach(async () => {
  vendor = await makeVendor();
});
afterEach(async () => {
  await disposeAgent(t);
  t = undefined;
  vendor.cleanup();
});

test("a method with a declared budget outlives hosts.callTimeoutSeconds; an undeclared one does not", async () => {
  await vendor.release("Crashy", 1, { "data.txt": "good v1" });
  t = await startAgent(vendor, {
    registry: hostTestRegistry,
    config: {
      hosts: { restartBackoffMs: 10, maxBackoffMs: 200, heartbeatSeconds: 0, callTimeoutSeconds: 0.5 },
    },
  });
  await t.agent.update();
  expect(await t.agent.call("Crashy", "wait", { ms: 1500 })).toEqual({ waited: 1500 });
  await expect(t.agent.call("Crashy", "sleep", { ms: 1500 })).rejects.toMatchObject({
    code: "HND_IPC_TIMEOUT",
  });
}, 30_000);

test("ScheduledQueryPack's run and query budgets cover the longest wall limit a query may have", () => {
  const budget = scheduledQueryPackHandler.manifest.callTimeoutSeconds ?? {};
  expect(budget.run).toBeGreaterThan(MAX_WALL_SECONDS);
  expect(budget.query).toBeGreaterThan(MAX_WALL_SECONDS);
});
