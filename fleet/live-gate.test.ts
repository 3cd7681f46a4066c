/**
 * `release start` of a live MLModel with real packages, keys and the fleet
 * telemetry store: refused until its telemetry twin has run three days with
 * enough scores and a detection rate under the bound (T3/T4); the
 * telemetry twin itself starts freely and records its models.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isOutpostError } from "../core/errors.ts";
import type { TelemetryReport } from "../core/telemetry/report-schema.ts";
import { makeVendor, type Vendor } from "../test/fixtures/vendor.ts";
import { parseReleaseConfig } from "./config.ts";
import { ReleaseEngine } from "./engine.ts";
import { TelemetryStore } from "./telemetry/store.ts";

setDefaultTimeout(30_000);
const EXAMPLE = join(import.meta.dir, "../examples/MLModel/outpost-lr");
const DAY = 86_400_000;

let vendor: Vendor;
let root: string;
beforeAll(async () => {
  vendor = await makeVendor();
  root = mkdtempSync(join(tmpdir(), "outpost-live-gate-"));
  mkdirSync(join(root, "repo"));
});
afterAll(() => {
  vendor.cleanup();
  rmSync(root, { recursive: true, force: true });
});

function payload(mode: "telemetry" | "live"): Record<string, Uint8Array | string> {
  const out: Record<string, Uint8Array | string> = {};
  for (const f of readdirSync(EXAMPLE)) out[`outpost-lr/${f}`] = readFileSync(join(EXAMPLE, f));
  const m = JSON.parse(readFileSync(join(EXAMPLE, "manifest.json"), "utf8"));
  out["outpost-lr/manifest.json"] = JSON.stringify({ ...m, mode });
  return out;
}

function report(agentId: string, at: Date, scores: number, over: number): TelemetryReport {
  const row = (band: string, value: number) => ({
    name: "outpost_ml_scores_total",
    labels: { model: "outpost-lr", mode: "telemetry", band },
    value,
  });
  return {
    agentId,
    reportId: `${agentId}-${at.getTime()}`,
    rules: [],
    periodEnd: at.toISOString(),
    metrics: [row("over", over), row("under", scores - over)],
  } as unknown as TelemetryReport;
}

test("a live twin starts only after three days of telemetry with a bounded detection rate", async () => {
  let clock = Date.now();
  const config = parseReleaseConfig(
    { repo: join(root, "repo"), keys: vendor.keysDir, stateDir: join(root, "state") },
    "release.json",
  );
  const engine = new ReleaseEngine({ config, now: () => new Date(clock) });
  const write = async (version: number, mode: "telemetry" | "live") => {
    const file = join(root, `MLModel-${version}.tar`);
    await Bun.write(file, await vendor.pack("MLModel", version, payload(mode)));
    return file;
  };

  const t = await engine.start({ type: "MLModel", version: 1, packageFile: await write(1, "telemetry") });
  expect(t.models).toEqual([{ name: "outpost-lr", mode: "telemetry" }]);
  // The telemetry release ran its course (the gate counts any release that was not aborted).
  const db = await engine.db();
  const s = await db.releases.load();
  s.releases[0]!.status = "completed";
  await db.releases.save(s);

  const liveFile = await write(2, "live");
  const refused = async (want: string) => {
    try {
      await engine.start({ type: "MLModel", version: 2, packageFile: liveFile });
    } catch (e) {
      expect(isOutpostError(e) && e.code).toBe("REL_LIVE_GATE");
      expect((e as Error).message).toContain(want);
      return;
    }
    throw new Error("the live release started");
  };
  await refused("T3 outpost-lr: in telemetry since");

  clock += 4 * DAY;
  await refused("T4 outpost-lr: 0 telemetry scores from 0 agents");

  // Reports as the fleet service stores them: in the fleet database the engine opened.
  const store = new TelemetryStore((await engine.db()).driver);
  const at = new Date(clock - DAY);
  expect(await store.insert("a1", "t", report("agent-1", at, 800, 3), at)).toBe(true);
  expect(await store.insert("a2", "t", report("agent-2", at, 700, 2), at)).toBe(true);
  await refused("T4 outpost-lr: 5 of 1500 telemetry scores over threshold (0.333%)");

  const later = new Date(clock - 1000);
  // Newer cumulative reports: the same agents scored far more, and hardly any more over threshold.
  await store.insert("a3", "t", report("agent-1", later, 40_000, 10), later);
  await store.insert("a4", "t", report("agent-2", later, 30_000, 5), later);
  const live = await engine.start({ type: "MLModel", version: 2, packageFile: liveFile });
  expect(live.models).toEqual([{ name: "outpost-lr", mode: "live" }]);
  expect(live.groups[0]!.publishedAt).not.toBeNull();
  await engine.closeDb();
});
