/**
 * Groups with identical allowances sharing one host process (rule G3,
 * core/host/policy.ts; issue 21, Footprint), end to end with real processes:
 * both groups' handlers are served by one pid, status lists each group with
 * the process it shares, a crash of that process is a crash of both (both
 * restart and reload their content, one health reason), and an idle stop
 * needs every group in the process to allow it. Waits are on conditions
 * with deadlines.
 */
import { afterEach, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import type { Agent } from "../../core/agent/runtime.ts";
import { HandlerRegistry } from "../../core/handler/registry.ts";
import { disposeAgent, makeVendor, startAgent, type TestAgent, type Vendor } from "../fixtures/vendor.ts";
import { crashyGroup, crashyHandler, echoGroup, echoHandler } from "./handlers.ts";

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

const pairRegistry = () =>
  new HandlerRegistry()
    .registerGroup({ ...crashyGroup, process: "pair" })
    .registerGroup({ ...echoGroup, process: "pair" })
    .register(crashyHandler, new URL("./handlers.ts", import.meta.url).href)
    .register(echoHandler, new URL("./handlers.ts", import.meta.url).href);

const hostOf = (agent: Agent, group: string) => agent.status().hosts?.find((h) => h.group === group);
const read = async (agent: Agent) =>
  (await agent.call("Crashy", "read", {})) as { text: string; version: number; pid: number };
const scan = (agent: Agent) => agent.call("Echo", "scan", { data: new Uint8Array(8) });

async function installBoth(idleStop?: { afterSeconds: number; groups: string[] }): Promise<Agent> {
  vendor = await makeVendor();
  await vendor.release("Crashy", 1, { "data.txt": "good v1" });
  await vendor.release("Echo", 1, { "e.txt": "e" });
  t = await startAgent(vendor, {
    registry: pairRegistry,
    config: { hosts: { watchdogIntervalMs: 50, heartbeatSeconds: 0, ...(idleStop ? { idleStop } : {}) } },
  });
  const installed = (await t.agent.update()).installed.map((i) => i.type).sort();
  expect(installed).toEqual(["Crashy", "Echo"]);
  return t.agent;
}

test("two groups, one process: one pid, each group in status with the process it shares", async () => {
  const agent = await installBoth();
  const { pid } = await read(agent);
  expect(await scan(agent)).toMatchObject({ verdict: "clean" });
  const crashy = hostOf(agent, "crashy");
  const echo = hostOf(agent, "echo");
  expect(crashy).toMatchObject({ process: "pair", pid, handlers: ["Crashy"], state: "running" });
  expect(echo).toMatchObject({ process: "pair", pid, handlers: ["Echo"], state: "running" });
  // One process on the machine for both groups, and the content entries say where they run.
  expect(
    agent
      .status()
      .hosts?.filter((h) => h.pid === pid)
      .map((h) => h.group),
  ).toEqual(["crashy", "echo"]);
  expect(agent.status().content.find((c) => c.type === "Echo")?.host).toMatchObject({
    group: "echo",
    process: "pair",
    pid,
  });
}, 30_000);

test("a crash of the shared process restarts both groups on their content; one health reason", async () => {
  const agent = await installBoth();
  const { pid } = await read(agent);
  await agent.call("Crashy", "abort", {}).catch(() => {});
  expect(await until(() => (hostOf(agent, "echo")?.crashesInWindow ?? 0) >= 1, 15_000)).toBe(true);
  // Echo's group crashed with Crashy's: it comes back in the new process with its content.
  expect(await scan(agent)).toMatchObject({ verdict: "clean" });
  const again = await read(agent);
  expect(again).toMatchObject({ text: "good v1", version: 1 });
  expect(again.pid).not.toBe(pid);
  expect(hostOf(agent, "echo")?.pid).toBe(again.pid);
  const reasons = agent.status().healthReasons.filter((r) => r.startsWith("host "));
  expect(reasons).toHaveLength(1);
  expect(reasons[0]).toContain("host pair crashed 1 time(s)");
}, 30_000);

test("an idle stop needs every group of the shared process to allow it", async () => {
  const agent = await installBoth({ afterSeconds: 0.3, groups: ["crashy"] });
  const { pid } = await read(agent);
  // Quiet for ten idle periods: echo is not listed, so the process stays up.
  const deadline = Date.now() + 3000;
  let stopped = false;
  await until(() => {
    stopped ||= hostOf(agent, "crashy")?.state === "stopped";
    return stopped || Date.now() >= deadline;
  }, 5000);
  expect(stopped).toBe(false);
  expect((await read(agent)).pid).toBe(pid);
  await t?.stop();
  rmSync(t!.stateDir, { recursive: true, force: true });
  t = undefined;
  vendor?.cleanup();
  // Both listed: it stops, and the next call brings both back.
  const both = await installBoth({ afterSeconds: 0.3, groups: ["crashy", "echo"] });
  await read(both);
  expect(await until(() => hostOf(both, "echo")?.state === "stopped", 15_000)).toBe(true);
  expect(hostOf(both, "crashy")?.state).toBe("stopped");
  expect(await scan(both)).toMatchObject({ verdict: "clean" });
  expect((await read(both)).text).toBe("good v1");
}, 45_000);
