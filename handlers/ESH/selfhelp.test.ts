/**
 * Self-help end to end on the agent's own log: the agent's update repository
 * goes down, the agent writes what it writes (JSON lines, through the log
 * file sink `agent run` attaches), and the example rule for an unreachable
 * repository (examples/ESH) turns that into an info-level health reason,
 * an event and an admin alert — cleared once the log has been quiet.
 */
import { afterEach, beforeEach, expect, setDefaultTimeout, test } from "bun:test";
import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { renderStatus } from "../../core/cli/agent/render.ts";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { HandlerRegistry } from "../../core/handler/registry.ts";
import { log } from "../../core/log.ts";
import { AGENT_LOG, attachLogFiles, logDir } from "../../core/logs/files.ts";
import {
  disposeAgent,
  makeVendor,
  startAgent,
  type TestAgent,
  type Vendor,
} from "../../test/fixtures/vendor.ts";
import { builtinGroups } from "../groups.ts";
import { eshHandler } from "./index.ts";
import { SelfHelpService } from "./service.ts";

setDefaultTimeout(60_000);
const EXAMPLES = resolve(import.meta.dir, "../../examples/ESH");

let vendor: Vendor;
let t: TestAgent | undefined;
let detach: (() => void) | undefined;
let svc: SelfHelpService | undefined;

function registry(): HandlerRegistry {
  const r = new HandlerRegistry();
  for (const g of builtinGroups) r.registerGroup(g);
  return r.register(eshHandler as ContentHandler);
}

function examples(): Record<string, string> {
  return Object.fromEntries(
    readdirSync(EXAMPLES)
      .filter((f) => f.endsWith(".jsonl"))
      .map((f) => [f, readFileSync(join(EXAMPLES, f), "utf8")]),
  );
}

/** A loopback port nothing listens on: the repository is down. */
async function deadPort(): Promise<number> {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = s.port!;
  await s.stop(true);
  return port;
}

beforeEach(async () => {
  vendor = await makeVendor();
});
afterEach(async () => {
  await svc?.stop();
  detach?.();
  await disposeAgent(t);
  svc = undefined;
  detach = undefined;
  t = undefined;
  vendor.cleanup();
});

test("the agent's own log lines with its repository down raise KBA-1001; quiet clears it", async () => {
  await vendor.release("ESH", 1, examples());
  const first = await startAgent(vendor, { registry, config: { hosts: { isolation: "in-process" } } });
  expect((await first.agent.update()).installed.map((i) => i.type)).toEqual(["ESH"]);
  await first.stop();

  // Same state, but the repository is now unreachable.
  let clock = Date.now();
  const now = () => new Date(clock);
  t = await startAgent(vendor, {
    stateDir: first.stateDir,
    repo: `http://127.0.0.1:${await deadPort()}`,
    registry,
    now,
    config: { hosts: { isolation: "in-process" }, selfHelp: { quietSeconds: 600 } },
  });
  detach = attachLogFiles(log, t.agent.config).detach;
  svc = new SelfHelpService({ agent: t.agent, config: t.agent.config, now });
  for (let i = 0; i < 3; i++) {
    const report = await t.agent.update().catch((e) => ({ ok: false, error: e }));
    expect(report.ok).toBe(false);
  }
  const logFile = join(logDir(t.agent.config), AGENT_LOG);
  const written = readFileSync(logFile, "utf8");
  expect(written).toContain('"code":"UPD_NETWORK"');

  await svc.tick();
  const reason = t.agent.health.get("esh", "KBA-1001");
  expect(reason?.level).toBe("info");
  expect(reason?.message).toStartWith(
    "self-help: KBA-1001 — The update repository cannot be reached (proxy, firewall or DNS) — https://kb.outpost.example/KBA-1001, first seen ",
  );
  expect(reason?.message).toContain("count 3");
  // Information only: it does not worsen health (the failing updates do), but status lists it.
  const status = t.agent.status();
  expect(status.healthReasons.some((r) => r.includes("KBA-1001"))).toBe(false);
  expect(renderStatus(status)).toContain("info          self-help: KBA-1001 — The update repository");
  expect((status.healthDetails ?? []).some((r) => r.code === "KBA-1001" && r.level === "info")).toBe(true);
  expect(t.agent.events.recent((e) => e.type === "selfhelp-finding")).toHaveLength(1);
  expect(t.alerts.alerts.filter((a) => a.kind === "selfhelp-finding").map((a) => a.code)).toEqual([
    "KBA-1001",
  ]);
  const listed = (await t.agent.call("ESH", "findings", {})) as { findings: { ruleId: string }[] };
  expect(listed.findings.map((f) => f.ruleId)).toEqual(["update-repo-unreachable"]);

  // The log rotates and then vanishes under the reader: nothing breaks, the finding stays.
  renameSync(logFile, `${logFile}.1`);
  await svc.tick();
  rmSync(`${logFile}.1`);
  writeFileSync(logFile, "");
  rmSync(logFile);
  await svc.tick();
  expect(svc.stats().errors).toBe(0);
  expect(t.agent.health.get("esh", "KBA-1001")).toBeDefined();

  // Quiet for the window: cleared, with an event.
  clock += 601_000;
  await svc.tick();
  expect(t.agent.health.get("esh", "KBA-1001")).toBeUndefined();
  expect(t.agent.events.recent((e) => e.type === "selfhelp-cleared")).toHaveLength(1);
});

test("file: logs outside selfHelp.allowedDirs are never read", async () => {
  await vendor.release("ESH", 1, {
    "r.jsonl": JSON.stringify({
      id: "shadow",
      logs: ["file:/etc/shadow"],
      pattern: "root",
      windowSeconds: 60,
      kba: { id: "KBA-9", url: "https://kb.example.com/9", title: "t" },
    }),
  });
  t = await startAgent(vendor, { registry, config: { hosts: { isolation: "in-process" } } });
  await t.agent.update();
  svc = new SelfHelpService({ agent: t.agent, config: t.agent.config });
  await svc.tick();
  expect(svc.stats().skipped).toEqual(["file:/etc/shadow"]);
  expect(svc.stats().files).toEqual([]);
});

test("an idle round makes no call to the ESH host; a finding is fed again only when it falls due (issue 21)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "outpost-esh-idle-"));
  try {
    const app = join(dir, "app.log");
    writeFileSync(app, "");
    await vendor.release("ESH", 1, {
      "r.jsonl": JSON.stringify({
        id: "boom",
        logs: [`file:${app}`],
        pattern: "boom",
        windowSeconds: 60,
        kba: { id: "KBA-7", url: "https://kb.example.com/7", title: "boom" },
      }),
    });
    let clock = Date.now();
    const now = () => new Date(clock);
    t = await startAgent(vendor, {
      registry,
      now,
      config: { hosts: { isolation: "in-process" }, selfHelp: { allowedDirs: [dir], quietSeconds: 600 } },
    });
    await t.agent.update();
    svc = new SelfHelpService({ agent: t.agent, config: t.agent.config, now });
    const feeds = () => svc!.stats().feeds;

    await svc.tick(); // the first round asks the host which findings it holds
    expect(feeds()).toBe(1);
    for (let i = 0; i < 3; i++) await svc.tick();
    expect(feeds()).toBe(1); // nothing new, nothing open: no call

    appendFileSync(app, "2026-12-05 something went boom\n");
    await svc.tick();
    expect(feeds()).toBe(2);
    expect(t.agent.health.get("esh", "KBA-7")).toBeDefined();
    clock += 599_000;
    await svc.tick();
    expect(feeds()).toBe(2); // open, but not quiet for 600 s yet: still no call

    clock += 2_000;
    await svc.tick(); // due: fed, and cleared
    expect(feeds()).toBe(3);
    expect(t.agent.health.get("esh", "KBA-7")).toBeUndefined();
    expect(t.agent.events.recent((e) => e.type === "selfhelp-cleared")).toHaveLength(1);
    await svc.tick();
    expect(feeds()).toBe(3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
