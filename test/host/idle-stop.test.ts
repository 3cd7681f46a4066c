/**
 * Hosts of groups that hold nothing hot stop after a quiet period and come
 * back on the next call with their content (core/host/idle-stop.ts), end to
 * end with real processes: no crash is counted, health stays green, and a
 * busy host is not stopped. Waits are on conditions with deadlines.
 */
import { afterEach, expect, test } from "bun:test";
import type { Agent } from "../../core/agent/runtime.ts";
import { disposeAgent, makeVendor, startAgent, type TestAgent, type Vendor } from "../fixtures/vendor.ts";
import { hostTestRegistry } from "./handlers.ts";

let vendor: Vendor | undefined;
let t: TestAgent | undefined;
afterEach(async () => {
  await disposeAgent(t);
  t = undefined;
  vendor?.cleanup();
});

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(20);
  return cond();
}

const host = (agent: Agent) => agent.status().hosts?.find((h) => h.group === "crashy");
const read = async (agent: Agent) =>
  (await agent.call("Crashy", "read", {})) as { text: string; version: number; pid: number };

test("a quiet host stops after afterSeconds; the next call starts it with its content; no crash", async () => {
  vendor = await makeVendor();
  await vendor.release("Crashy", 1, { "data.txt": "good v1" });
  t = await startAgent(vendor, {
    registry: hostTestRegistry,
    config: {
      hosts: {
        watchdogIntervalMs: 50,
        heartbeatSeconds: 0,
        idleStop: { afterSeconds: 0.5, groups: ["crashy"] },
      },
    },
  });
  const agent = t.agent;
  expect((await agent.update()).installed).toEqual([{ type: "Crashy", version: 1, previousVersion: null }]);
  const first = await read(agent);
  // Busy (a call every 100 ms for 1.5 s, three idle periods): not stopped.
  const until1500 = Date.now() + 1500;
  while (Date.now() < until1500) {
    expect((await read(agent)).pid).toBe(first.pid);
    await Bun.sleep(100);
  }
  // Quiet: stopped.
  expect(await until(() => host(agent)?.state === "stopped", 15_000)).toBe(true);
  expect(agent.status().content[0]).toMatchObject({ type: "Crashy", version: 1 });
  // The next call brings it back, with the installed content.
  const again = await read(agent);
  expect(again).toMatchObject({ text: "good v1", version: 1 });
  expect(again.pid).not.toBe(first.pid);
  expect(host(agent)?.state).toBe("running");
  expect(agent.events.recent((e) => e.type === "host-crashed")).toEqual([]);
  expect(host(agent)?.crashesInWindow).toBe(0);
  expect(agent.status().health).toBe("green");
}, 30_000);
