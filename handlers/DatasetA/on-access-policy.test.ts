/**
 * On-access scanning follows the effective configuration, against the real
 * kernel (root): a tenant policy delivered by the fleet (RemapperRules rule
 * file → `onAccess.*`) and the `onAccessBlock` flag switch detect/block,
 * move the watched paths and turn the sensor off — fanotify is re-marked
 * without restarting the agent — and a change that cannot start leaves the
 * previous marks in force, reported in status and on the event stream.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentEvent } from "../../core/agent/events.ts";
import { sensorsService } from "../../core/sensors/service.ts";
import { ruleFile, supplementFile, tenantPolicy } from "../../test/fixtures/policy.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../../test/fixtures/vendor.ts";
import { defaultRegistry } from "../index.ts";
import { onAccessService } from "./on-access-service.ts";
import { effectiveScanningService } from "./scan/effective.ts";

setDefaultTimeout(120_000);
const isRoot = process.getuid?.() === 0;
const hex = (s: string) => Buffer.from(s).toString("hex");
const TENANT = "acme";
const MARK = "outpost-mark-policy";

const root = mkdtempSync(join(tmpdir(), "outpost-oa-policy-"));
const dirA = join(root, "a");
const dirB = join(root, "b");
mkdirSync(dirA);
mkdirSync(dirB);

const RULES = ruleFile("tp.xml", [
  { id: "oa-on", select: "/policy/onAccess/@enabled", convert: { fn: "bool" }, target: "onAccess.enabled" },
  {
    id: "oa-mode",
    select: "/policy/onAccess/@mode",
    convert: { fn: "enum", map: { detect: "detect", block: "block" } },
    target: "onAccess.mode",
  },
  {
    id: "oa-paths",
    select: "/policy/onAccess/path",
    convert: { fn: "list", item: "path" },
    target: "onAccess.paths",
  },
]);
const policy = (enabled: boolean, mode: string, paths: string[]) =>
  `<?xml version="1.0"?>\n<policy>\n  <onAccess enabled="${enabled}" mode="${mode}">${paths
    .map((p) => `<path>${p}</path>`)
    .join("")}</onAccess>\n</policy>\n`;

let vendor: Vendor;
let t: TestAgent;
let fleet: ReturnType<typeof tenantPolicy>;
let onAccess: ReturnType<typeof onAccessService>;
const events: AgentEvent[] = [];
const services: { start(): unknown; stop(): unknown }[] = [];
let seq = 0;

/** Runs a shell command as a grandchild (our direct children count as the agent's own processes). */
async function sh(cmd: string): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn(["sh", "-c", cmd], { stdout: "ignore", stderr: "pipe" });
  const code = await p.exited;
  return { code, stderr: await new Response(p.stderr).text() };
}

/** A deadline, not a delay. */
async function until(cond: () => boolean, ms = 30_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(10);
  return cond();
}

const onAccessStatus = () =>
  (t.agent.status().sensors as { onAccess?: Record<string, unknown> } | undefined)?.onAccess;

/** The fleet changes something; the agent's next cycle picks it up; on-access re-applies. */
async function cycle(change: () => Promise<unknown>): Promise<void> {
  await change();
  await t.agent.update();
  await onAccess.settled();
}

/** Writes a file carrying the signature through a grandchild, then reads it back: was the read refused? */
async function dropAndRead(dir: string): Promise<{ path: string; refused: boolean }> {
  const path = join(dir, `f${++seq}.txt`);
  // Written by tee, a grandchild: a write by the shell itself (our child) would be the agent's own.
  expect((await sh(`printf 'x ${MARK} y' | tee ${path} > /dev/null`)).code).toBe(0);
  const r = await sh(`cat ${path}`);
  if (r.code !== 0) expect(r.stderr).toContain("Operation not permitted");
  return { path, refused: r.code !== 0 };
}

const detected = (path: string) =>
  until(() =>
    events.some((e) => e.type === "scan-detection" && e.target === path && e.source === "on-access"),
  );

beforeAll(async () => {
  if (!isRoot) return;
  vendor = await makeVendor();
  fleet = tenantPolicy(vendor, TENANT);
  await vendor.release("DatasetA", 1, { "main.ndb": `T.Policy:0:*:${hex(MARK)}\n` });
  await vendor.release("RemapperRules", 1, { "oa.json": RULES });
  await vendor.release("Flags", 1, {
    "flags.json": supplementFile({ onAccessBlock: "available", mlLive: "available", ips: "available" }),
  });
  await fleet.setDocument("tp.xml", policy(true, "detect", [dirA]));
  await fleet.setFlags({ onAccessBlock: "on" });
  t = await startAgent(vendor, {
    registry: defaultRegistry,
    config: {
      fleet: { tenant: TENANT },
      reputation: { processTagging: false },
      onAccess: { timeoutMs: 3000 },
    },
  });
  await t.agent.update();
  t.agent.events.subscribe((e) => events.push(e));
  const ctx = { config: t.agent.config, api: t.agent, events: t.agent.events };
  onAccess = onAccessService(ctx);
  services.push(sensorsService(ctx), effectiveScanningService(ctx, t.agent.effective), onAccess);
  for (const s of services) await s.start();
});

afterAll(async () => {
  for (const s of services.reverse()) await s.stop();
  await t?.stop();
  vendor?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

describe.if(isRoot)("on-access follows tenant policy and the onAccessBlock flag", () => {
  test("policy turns detect into block without a restart: the next open is refused", async () => {
    // agent.json says nothing about on-access: policy enabled it, in detect mode, on dirA.
    expect(t.agent.config.onAccess.enabled).toBe(false);
    expect(onAccessStatus()).toMatchObject({
      enabled: true,
      sensor: "fanotify",
      mode: "detect",
      paths: [dirA],
    });
    const before = await dropAndRead(dirA);
    expect(before.refused).toBe(false);
    expect(await detected(before.path)).toBe(true);

    await cycle(() => fleet.setDocument("tp.xml", policy(true, "block", [dirA])));
    expect(onAccessStatus()).toMatchObject({ mode: "block", sensor: "fanotify" });
    expect((await dropAndRead(dirA)).refused).toBe(true);
    expect(
      events.filter((e) => e.type === "config-applied" && e.service === "on-access").at(-1),
    ).toMatchObject({
      keys: ["mode"],
    });
  });

  test("the flag off withholds block: detect in force, status says why; on again → block", async () => {
    await cycle(() => fleet.setFlags({ onAccessBlock: "off" }));
    expect(t.agent.effective.current().onAccess.mode).toBe("detect");
    expect(onAccessStatus()).toMatchObject({
      mode: "detect",
      modeWithheld: { wanted: "block", flag: "onAccessBlock" },
    });
    expect(t.agent.effective.gates().find((g) => g.flag === "onAccessBlock")).toMatchObject({
      wanted: "block",
      value: "detect",
      state: "withheld",
    });
    const f = await dropAndRead(dirA);
    expect(f.refused).toBe(false);
    expect(await detected(f.path)).toBe(true);

    await cycle(() => fleet.setFlags({ onAccessBlock: "on" }));
    expect(onAccessStatus()).toMatchObject({ mode: "block" });
    expect(onAccessStatus()?.modeWithheld).toBeUndefined();
    expect((await dropAndRead(dirA)).refused).toBe(true);
  });

  test("paths move and are re-marked; a path that cannot be marked is refused and the old marks stay", async () => {
    await cycle(() => fleet.setDocument("tp.xml", policy(true, "block", [dirB])));
    expect((await dropAndRead(dirB)).refused).toBe(true);
    expect((await dropAndRead(dirA)).refused).toBe(false);

    const missing = join(root, "not-there");
    await cycle(() => fleet.setDocument("tp.xml", policy(true, "block", [missing])));
    // The effective config says what policy asked for; the service says what is in force, and why.
    expect(t.agent.effective.current().onAccess.paths).toEqual([missing]);
    expect(onAccessStatus()).toMatchObject({ mode: "block", paths: [dirB], sensor: "fanotify" });
    const reason = t.agent.status().healthDetails?.find((r) => r.source === "config:on-access");
    expect(reason).toMatchObject({ level: "amber", code: "POL_NOT_APPLIED" });
    expect(reason?.message).toContain("the previous settings stay in force");
    expect(events.filter((e) => e.type === "config-apply-failed").at(-1)).toMatchObject({
      service: "on-access",
      code: "POL_SETTINGS_NOT_STARTED",
      keys: ["paths"],
      restored: true,
    });
    const services = (t.agent.status().effective as { services: Record<string, { rejected: unknown }> })
      .services;
    expect(services["on-access"]?.rejected).toMatchObject({ code: "POL_SETTINGS_NOT_STARTED" });
    expect((await dropAndRead(dirB)).refused).toBe(true);
  });

  test("policy disables on-access: the marks go; enabling again restores them", async () => {
    await cycle(() => fleet.setDocument("tp.xml", policy(false, "block", [dirB])));
    expect(onAccessStatus()).toBeUndefined();
    expect(t.agent.status().healthDetails?.some((r) => r.source === "config:on-access")).toBe(false);
    expect((await dropAndRead(dirB)).refused).toBe(false);

    await cycle(() => fleet.setDocument("tp.xml", policy(true, "block", [dirB])));
    expect((await dropAndRead(dirB)).refused).toBe(true);
  });
});
