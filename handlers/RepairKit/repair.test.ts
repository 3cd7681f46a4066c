/**
 * RepairKit end to end: the installation is broken in several ways and
 * `agent run-repair` (the real CLI, no agent running) fixes it — with the
 * baked-in last-resort rules, with delivered rules, and with delivered
 * rules that no longer verify. Then the in-cycle pass (runRepair) against
 * a running agent.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { ContentStore } from "../../core/store/store.ts";
import { cliCommand } from "../../test/fixtures/compiled.ts";
import { makeVendor, TEST_GROUP, type Vendor } from "../../test/fixtures/vendor.ts";
import { RulesSourceConfigSchema } from "../_shared/lua/format.ts";
import { rulesPayload, startLuaAgent, type TestKey, testKey } from "../_shared/lua/testkit.ts";
import { productRulesFeedHandler } from "../ProductRulesFeed/index.ts";
import { repairKitHandler } from "./index.ts";
import type { RepairReport } from "./report.ts";
import { runRepair } from "./run.ts";

const ROOT = resolve(import.meta.dir, "../..");
const EXAMPLES = join(ROOT, "examples", "RepairKit");
const PRODUCT = { util: "local M = {} function M.id(x) return x end return M" };

let vendor: Vendor;
let key: TestKey;
let dir: string;
let stateDir: string;
let trustPath: string;
let configFile: string;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([...(await cliCommand("agent")), ...args], {
    cwd: dir,
    env: { ...process.env, OUTPOST_LOG_QUIET: "1", NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

async function repair(...extra: string[]): Promise<RepairReport & { code: number }> {
  const r = await cli("run-repair", "--config", configFile, "--json", ...extra);
  if (!r.stdout.trim().startsWith("{"))
    throw new Error(`run-repair exited ${r.code}: ${r.stderr}${r.stdout}`);
  return { ...(JSON.parse(r.stdout) as RepairReport), code: r.code };
}

/** Failed checks with what they said, so a failing expectation explains itself. */
const failures = (r: RepairReport) =>
  r.checks
    .filter((c) => c.status === "failed")
    .map((c) => ({ id: c.id, messages: c.messages, fixes: c.fixes, error: c.error }));

const statusOf = (r: RepairReport) => Object.fromEntries(r.checks.map((c) => [c.id, c.status]));

function examplesPayload(): Record<string, Uint8Array> {
  const cfg = RulesSourceConfigSchema.parse(JSON.parse(readFileSync(join(EXAMPLES, "rules.json"), "utf8")));
  const rules = Object.fromEntries(
    (cfg.order ?? []).map((n) => [n, readFileSync(join(EXAMPLES, `${n}.lua`), "utf8")] as const),
  );
  return rulesPayload("RepairKit", rules, key, { limits: cfg.limits });
}

function writeConfig(patch: Record<string, unknown> = {}): void {
  const update = {
    repo: vendor.repo,
    group: TEST_GROUP,
    trust: trustPath,
    ...((patch.update as object) ?? {}),
  };
  writeFileSync(configFile, JSON.stringify({ stateDir, ...patch, update }, null, 2));
}

async function install(): Promise<void> {
  const keyFile = join(dir, "content-key.json");
  writeFileSync(keyFile, JSON.stringify(key.file), { mode: 0o600 });
  expect((await cli("rules", "install-key", keyFile, "--config", configFile)).code).toBe(0);
  const up = await cli("update", "--once", "--config", configFile, "--json");
  expect(JSON.parse(up.stdout)).toMatchObject({ ok: true });
}

/** A pid that is certainly not running: a process that has exited. */
async function deadPid(): Promise<number> {
  const p = Bun.spawn(["true"]);
  await p.exited;
  return p.pid;
}

/** Several breakages at once, all of AutoUpdate's own things. */
async function breakAutoUpdate(): Promise<void> {
  writeFileSync(join(stateDir, "agent.lock"), `${await deadPid()}\n`);
  const state = readFileSync(join(stateDir, "update-state.json"), "utf8");
  writeFileSync(
    join(stateDir, "update-state.json"),
    `${state.slice(0, Math.floor(state.length / 2))}\u0000garbage`,
  );
  chmodSync(stateDir, 0o777);
  rmSync(trustPath);
  writeFileSync(join(stateDir, "index-cache", TEST_GROUP, "index.p7s"), "not a signature");
  writeConfig({ update: { enabled: false } });
}

beforeEach(async () => {
  vendor = await makeVendor();
  key = testKey();
  dir = mkdtempSync(join(tmpdir(), "outpost-repair-"));
  stateDir = join(dir, "state");
  mkdirSync(join(dir, "etc"), { recursive: true });
  trustPath = join(dir, "etc", "root.pem");
  copyFileSync(vendor.trustPath, trustPath);
  configFile = join(dir, "agent.json");
  writeConfig();
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  vendor.cleanup();
});

describe("agent run-repair with the agent stopped", () => {
  test("baked-in rules: stale lock, broken update state, open state dir, lost trust store, bad index cache, disabled updates", async () => {
    await vendor.release("ProductRulesFeed", 1, rulesPayload("ProductRulesFeed", PRODUCT, key));
    await install();
    const serialBefore = JSON.parse(readFileSync(join(stateDir, "update-state.json"), "utf8")).groups[
      TEST_GROUP
    ].lastSerial as number;

    // A healthy installation: nothing to repair; the proven trust store is backed up.
    const clean = await repair();
    expect(failures(clean)).toEqual([]);
    expect(clean.code).toBe(0);
    expect(clean.ruleset).toMatchObject({ source: "baked-in", version: null });
    expect(clean.ruleset.fallbackReason).toContain("HND_REPAIR_NOT_INSTALLED");
    expect(clean.summary).toMatchObject({ failed: 0, repaired: 0 });
    expect(existsSync(join(stateDir, "repair", "trust-backup.pem"))).toBe(true);

    await breakAutoUpdate();
    const dry = await repair("--dry-run");
    expect(statusOf(dry)).toMatchObject({
      "autoupdate.state-dir": "would-repair",
      "autoupdate.lock": "would-repair",
      "autoupdate.update-state": "would-repair",
      "autoupdate.trust-store": "would-repair",
      // Not verifiable before the trust store is back; the real run finds it in a second pass.
      "autoupdate.index-cache": "warning",
      "autoupdate.schedule": "would-repair",
    });
    // A dry run changes nothing.
    expect(existsSync(join(stateDir, "agent.lock"))).toBe(true);
    expect(existsSync(trustPath)).toBe(false);

    const fixed = await repair();
    expect(failures(fixed)).toEqual([]);
    expect(fixed.code).toBe(0);
    expect(statusOf(fixed)).toEqual({
      "autoupdate.state-dir": "repaired",
      "autoupdate.lock": "repaired",
      "autoupdate.update-state": "repaired",
      "autoupdate.trust-store": "repaired",
      "autoupdate.index-cache": "repaired",
      "autoupdate.schedule": "repaired",
    });
    expect(existsSync(join(stateDir, "agent.lock"))).toBe(false);
    expect(statSync(stateDir).mode & 0o066).toBe(0);
    expect(readFileSync(trustPath, "utf8")).toBe(readFileSync(vendor.trustPath, "utf8"));
    expect(JSON.parse(readFileSync(configFile, "utf8")).update.enabled).toBe(true);
    // The broken state file is kept for inspection, and the rollback floor survived the reset.
    expect(readdirSync(join(stateDir, "quarantine")).some((f) => f.endsWith("update-state.json"))).toBe(true);
    const state = JSON.parse(readFileSync(join(stateDir, "update-state.json"), "utf8"));
    expect(state.groups[TEST_GROUP].lastSerial).toBeGreaterThanOrEqual(serialBefore - 1);
    expect(statSync(join(stateDir, "update-state.json")).mode & 0o777).toBe(0o600);

    // The agent starts and updates again; a second run finds nothing to do.
    const up = await cli("update", "--once", "--config", configFile, "--json");
    expect(JSON.parse(up.stdout)).toMatchObject({ ok: true });
    const again = await repair();
    expect(again.summary).toMatchObject({ failed: 0, repaired: 0, wouldRepair: 0 });
  }, 60_000);

  test("delivered rules: damaged content is fetched again, and the delivered checks run", async () => {
    await vendor.release("ProductRulesFeed", 1, rulesPayload("ProductRulesFeed", PRODUCT, key));
    await vendor.release("RepairKit", 1, examplesPayload());
    await install();
    const store = new ContentStore(stateDir);
    const rec = store.installed("ProductRulesFeed")!;
    appendFileSync(join(stateDir, "content", "ProductRulesFeed", rec.dir, "payload", "rules.json"), " ");
    expect(store.verifyInstalled("ProductRulesFeed")?.ok).toBe(false);
    writeFileSync(join(stateDir, "agent.lock"), `${await deadPid()}\n`);
    writeFileSync(join(stateDir, "control.json"), "{}");

    const r = await repair();
    expect(failures(r)).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.ruleset).toEqual({ source: "delivered", version: 1 });
    expect(statusOf(r)).toMatchObject({
      "autoupdate.lock": "repaired",
      "content.integrity": "repaired",
      "installation.stale-control": "repaired",
      "content.permissions": "ok",
    });
    expect(r.actions).toEqual([expect.objectContaining({ action: "update", ok: true })]);
    // Fetched again and whole.
    expect(new ContentStore(stateDir).verifyInstalled("ProductRulesFeed")?.ok).toBe(true);
    expect(existsSync(join(stateDir, "control.json"))).toBe(false);
  }, 60_000);

  test("delivered rules that no longer verify fall back to the baked-in rules, which still repair AutoUpdate", async () => {
    await vendor.release("RepairKit", 1, examplesPayload());
    await install();
    const rec = new ContentStore(stateDir).installed("RepairKit")!;
    const manifest = join(stateDir, "content", "RepairKit", rec.dir, "manifest.json");
    chmodSync(manifest, 0o644);
    writeFileSync(manifest, readFileSync(manifest, "utf8").replace('"version": 1', '"version": 1 '));
    writeFileSync(join(stateDir, "agent.lock"), `${await deadPid()}\n`);

    const r = await repair();
    expect(r.ruleset.source).toBe("baked-in");
    expect(r.ruleset.fallbackReason).toMatch(/SIG_|STORE_|manifest/);
    expect(statusOf(r)["autoupdate.lock"]).toBe("repaired");
    expect(r.checks.every((c) => c.id.startsWith("autoupdate."))).toBe(true);
  }, 60_000);
});

describe("the update cycle's repair pass (runRepair) against a running agent", () => {
  const handlers = [repairKitHandler, productRulesFeedHandler] as ContentHandler[];

  test("delivered RepairKit in its root host tightens what the running agent left open", async () => {
    await vendor.release("RepairKit", 1, examplesPayload());
    mkdirSync(join(stateDir, "trust"), { recursive: true });
    const trust = join(stateDir, "trust", "root.pem");
    copyFileSync(vendor.trustPath, trust);
    const t = await startLuaAgent(vendor, handlers, { key, stateDir, config: { update: { trust } } });
    try {
      expect((await t.agent.update()).ok).toBe(true);
      chmodSync(join(stateDir, "update-state.json"), 0o644);
      const events: string[] = [];
      t.agent.events.subscribe((e) => {
        if (e.type === "repair-finished") events.push(e.type);
      });
      const r = await runRepair(t.agent);
      expect(r.mode).toBe("in-cycle");
      expect(r.ruleset).toEqual({ source: "delivered", version: 1 });
      expect(statusOf(r)["autoupdate.update-state"]).toBe("repaired");
      expect(statSync(join(stateDir, "update-state.json")).mode & 0o777).toBe(0o600);
      expect(failures(r)).toEqual([]);
      expect(events).toEqual(["repair-finished"]);
    } finally {
      await t.stop();
    }
  }, 60_000);

  test("with no RepairKit delivered, the baked-in rules run in the supervisor", async () => {
    const t = await startLuaAgent(vendor, handlers, { key, stateDir });
    try {
      await t.agent.update();
      const r = await runRepair(t.agent, { dryRun: true });
      expect(r.ruleset.source).toBe("baked-in");
      expect(r.ruleset.fallbackReason).toMatch(/HND_NOT_LOADED|not-installed|no content/);
      expect(r.checks.map((c) => c.id)).toContain("autoupdate.trust-store");
    } finally {
      await t.stop();
    }
  }, 60_000);
});
