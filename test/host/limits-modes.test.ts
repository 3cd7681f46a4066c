/**
 * Limits and modes: RLIMIT_CPU ends a host that burns its CPU budget (and
 * the crash says so); a host whose Landlock layer is off still runs but
 * status and the log say which layer is missing; the in-process mode runs
 * the same handlers with the same transfer rules.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import type { AgentEvent } from "../../core/agent/events.ts";
import { type LogRecord, log } from "../../core/log.ts";
import {
  disposeAgent,
  liveText,
  makeVendor,
  startAgent,
  type TestAgent,
  type Vendor,
} from "../fixtures/vendor.ts";
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

describe("limits and modes", () => {
  test("a host that spends its CPU budget is ended by RLIMIT_CPU and reported as cpu-limit", async () => {
    await vendor.release("Spinner", 1, { "x.txt": "x" });
    t = await startAgent(vendor, {
      registry: hostTestRegistry,
      config: { hosts: { heartbeatSeconds: 0, restartBackoffMs: 10 } },
    });
    await t.agent.update();
    const crashed = new Promise<AgentEvent>((resolve) => {
      const off = t!.agent.events.subscribe((e) => {
        if (e.type !== "host-crashed") return;
        off();
        resolve(e);
      });
    });
    await expect(t.agent.call("Spinner", "spin", {})).rejects.toMatchObject({ code: "HND_HOST_CRASHED" });
    const e = await crashed;
    expect(e).toMatchObject({ group: "spinner", reason: "cpu-limit", during: "call Spinner.spin" });
    expect(String(e.detail)).toContain("CPU time limit of 1 s");
    const host = t.agent.status().hosts?.find((h) => h.group === "spinner");
    expect(host?.limits.cpuSeconds).toBe(1);
    expect(host?.layers.rlimits).toBe(true);
  }, 30_000);

  test("with Landlock off the host still serves, and status and the log name the missing layer", async () => {
    const warnings: LogRecord[] = [];
    const off = log.addSink((r) => {
      if (r.msg === "host sandbox degraded") warnings.push(r);
    });
    try {
      await vendor.release("TestText", 1, { "data.txt": "served" });
      t = await startAgent(vendor, { config: { hosts: { landlock: false, heartbeatSeconds: 0 } } });
      await t.agent.update();
      expect(await liveText(t.agent)).toBe("served");
      const host = t.agent.status().hosts?.find((h) => h.group === "test");
      expect(host?.layers).toMatchObject({ landlockFs: false, landlockNet: false, landlockScope: false });
      expect(host?.notes.join("\n")).toContain("landlock: disabled by configuration");
      expect(warnings[0]).toMatchObject({ group: "test" });
      expect(String(warnings[0]?.missing)).toContain("landlock-fs");
    } finally {
      off();
    }
  }, 30_000);

  test("in-process mode: same two-phase switch, same transfer rules, status says there is no isolation", async () => {
    await vendor.release("TestText", 1, { "data.txt": "inside" });
    t = await startAgent(vendor, { config: { hosts: { isolation: "in-process" } } });
    await t.agent.update();
    expect(await liveText(t.agent)).toBe("inside");
    const status = t.agent.status();
    expect(status.hosts?.[0]).toMatchObject({ group: "test", isolation: "in-process", pid: process.pid });
    expect(status.hosts?.[0]?.layers.landlockFs).toBe(false);
    expect(status.content[0]?.host).toMatchObject({ isolation: "in-process" });
    // A Map cannot cross a process boundary, so it is refused in-process too.
    await expect(t.agent.call("TestText", "read", { m: new Map() })).rejects.toMatchObject({
      code: "HND_IPC_UNSERIALIZABLE",
    });
  });
});
