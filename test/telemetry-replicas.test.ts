/**
 * Telemetry on two `contentctl serve --release --db postgres://…` replicas
 * (processes of their own, one throwaway PostgreSQL cluster): a report
 * uploaded to replica A is in replica B's console view and counted by the ML
 * live gate of a `release start` on its own connection; the same upload sent
 * to both replicas, one after the other or at once, is stored once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { sha256Hex } from "../core/crypto/digest.ts";
import { isOutpostError } from "../core/errors.ts";
import { REPORT_SCHEMA, type TelemetryReport } from "../core/telemetry/report-schema.ts";
import { loadReleaseConfig } from "../fleet/config.ts";
import type { FleetDb } from "../fleet/db/index.ts";
import { ReleaseEngine } from "../fleet/engine.ts";
import { openReleaseDb } from "../fleet/open-db.ts";
import type { TelemetryView } from "../fleet/telemetry/store.ts";
import { freshDbUrl, havePostgres, stopTestPostgres } from "./fixtures/fleet-db.ts";
import { type Replica, startReplica } from "./fixtures/replica.ts";
import { makeVendor, type Vendor } from "./fixtures/vendor.ts";

setDefaultTimeout(90_000);
const TOKEN = "telemetry-replica-token-0123456789";
const OPERATOR = "telemetry-replica-operator-0123456789";
const EXAMPLE = join(import.meta.dir, "../examples/MLModel/outpost-lr");
const MODEL = "outpost-lr";
const DAY = 86_400_000;

let vendor: Vendor;
let dir: string;
let cfg: string;
let url: string;
let a: Replica | undefined;
let b: Replica | undefined;

beforeAll(async () => {
  if (!havePostgres) return;
  vendor = await makeVendor();
  dir = mkdtempSync(join(tmpdir(), "outpost-telemetry-replicas-"));
  // One config per host: a state folder of its own each (only the database and the repo are shared).
  const config = (host: string) => {
    const file = join(dir, `release-${host}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        repo: vendor.repo,
        keys: vendor.keysDir,
        stateDir: `state-${host}`,
        groups: [{ name: "eng-test", promote: "manual", soakMinutes: 60 }],
        fleet: { tenants: { acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)) } } },
        console: { operators: { alice: { tokenSha256: sha256Hex(new TextEncoder().encode(OPERATOR)) } } },
        tickSeconds: 3600,
      }),
    );
    return file;
  };
  cfg = config("operator");
  url = (await freshDbUrl("postgres"))!;
  [a, b] = await Promise.all(["a", "b"].map((host) => startReplica(vendor.repo, config(host), url)));
});

afterAll(async () => {
  if (!havePostgres) return;
  a?.proc.kill("SIGKILL");
  b?.proc.kill("SIGKILL");
  await Promise.all([a?.proc.exited, b?.proc.exited]);
  await stopTestPostgres();
  vendor.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

let reports = 0;
/** A report as an agent's telemetry service builds it: one rule's runtimes and the model's telemetry scores. */
function report(agentId: string, periodEnd: Date, scores: number, over: number): TelemetryReport {
  reports++;
  const score = (band: string, value: number) => ({
    name: "outpost_ml_scores_total",
    labels: { model: MODEL, mode: "telemetry", band },
    value,
  });
  return {
    schema: REPORT_SCHEMA,
    reportId: `00000000-0000-4000-8000-${String(reports).padStart(12, "0")}`,
    agentId,
    agentVersion: "0.1.0",
    updateGroup: "eng-test",
    periodStart: new Date(periodEnd.getTime() - 3600_000).toISOString(),
    periodEnd: periodEnd.toISOString(),
    health: "green",
    content: [],
    rules: [
      {
        rule: "BEH-1",
        calls: 100,
        timeMs: 50 * reports,
        maxMs: 3,
        faults: 0,
        limitFaults: 0,
        detections: 0,
        disabled: false,
      },
    ],
    queries: [],
    hosts: [],
    metrics: [score("over", over), score("under", scores - over)],
    healthHistory: [],
  };
}

/** One upload as the agent sends it: gzipped JSON lines, the tenant token, `<generation>:<first>-<last>`. */
async function upload(r: Replica, key: string, body: TelemetryReport[]) {
  const res = await fetch(new URL(`/telemetry/v1/${body[0]!.agentId}`, r.url), {
    method: "PUT",
    headers: {
      authorization: `Bearer ${TOKEN}`,
      "content-type": "application/json",
      "content-encoding": "gzip",
      "idempotency-key": key,
    },
    body: gzipSync(body.map((x) => `${JSON.stringify(x)}\n`).join("")),
  });
  return { status: res.status, body: (await res.json()) as { stored: number; duplicates: number } };
}

async function consoleView(r: Replica): Promise<TelemetryView> {
  const res = await fetch(new URL("/console/telemetry.json", r.url), {
    headers: { authorization: `Bearer ${OPERATOR}` },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as TelemetryView;
}

function payload(mode: "telemetry" | "live"): Record<string, Uint8Array | string> {
  const out: Record<string, Uint8Array | string> = {};
  for (const f of readdirSync(EXAMPLE)) out[`${MODEL}/${f}`] = readFileSync(join(EXAMPLE, f));
  const m = JSON.parse(readFileSync(join(EXAMPLE, "manifest.json"), "utf8"));
  out[`${MODEL}/manifest.json`] = JSON.stringify({ ...m, mode });
  return out;
}

describe.skipIf(!havePostgres)("telemetry on two replicas of one PostgreSQL", () => {
  test("an upload to A is in B's console and B's live gate; the same upload to both is stored once", async () => {
    // The live gate of a `release start` on a host of its own: its own connection to the database.
    const t0 = Date.now();
    let clock = t0;
    const db: FleetDb = await openReleaseDb({ url, stateDir: join(dir, "state-operator") });
    const engine = new ReleaseEngine({ config: loadReleaseConfig(cfg), db, now: () => new Date(clock) });
    try {
      const twinFile = join(dir, "MLModel-1.tar");
      writeFileSync(twinFile, await vendor.pack("MLModel", 1, payload("telemetry")));
      await engine.start({ type: "MLModel", version: 1, packageFile: twinFile });
      // The telemetry twin ran its course; four days on (the engine's clock), T3 is met and T4 needs the fleet's scores.
      const state = await db.releases.load();
      state.releases[0]!.status = "completed";
      await db.releases.save(state);
      clock = t0 + 4 * DAY;
      const liveFile = join(dir, "MLModel-2.tar");
      writeFileSync(liveFile, await vendor.pack("MLModel", 2, payload("live")));
      const gateRefusal = async (): Promise<string> => {
        try {
          await engine.start({ type: "MLModel", version: 2, packageFile: liveFile });
        } catch (e) {
          expect(isOutpostError(e) && e.code).toBe("REL_LIVE_GATE");
          return (e as Error).message;
        }
        return "started";
      };
      expect(await gateRefusal()).toContain(`T4 ${MODEL}: 0 telemetry scores from 0 agents`);

      // 1. Uploaded to A: B's console shows it, the live gate counts it.
      const first = report("agent-1", new Date(t0 + 60_000), 600, 0);
      expect(await upload(a!, "gen-a:1-1", [first])).toEqual({
        status: 201,
        body: { stored: 1, duplicates: 0 },
      });
      const seenByB = await consoleView(b!);
      expect(seenByB).toMatchObject({ reports: 1, agents: 1 });
      expect(seenByB.rules).toEqual([
        expect.objectContaining({ rule: "BEH-1", agents: 1, calls: 100, p50Ms: 0.5 }),
      ]);
      expect(await gateRefusal()).toContain(
        `T4 ${MODEL}: 600 telemetry scores from 1 agents; at least 1000 needed`,
      );

      // 2. The same upload sent to B as well (the agent's retry went through the other replica): stored once.
      expect(await upload(b!, "gen-a:1-1", [first])).toEqual({
        status: 200,
        body: { stored: 0, duplicates: 1 },
      });
      expect((await consoleView(a!)).reports).toBe(1);

      // 3. One upload reaching both replicas at the same moment: one stores it, the other finds it stored.
      const second = report("agent-2", new Date(t0 + 120_000), 900, 0);
      const both = await Promise.all([a!, b!].map((r) => upload(r, "gen-b:7-7", [second])));
      expect(both.map((x) => x.body.stored).sort()).toEqual([0, 1]);
      expect(both.map((x) => x.status).sort()).toEqual([200, 201]);
      const [rows] = await db.driver.all("SELECT COUNT(*) AS n FROM telemetry_reports WHERE key = $1", [
        "gen-b:7",
      ]);
      expect(Number(rows?.n)).toBe(1);
      const [runtimeRows] = await db.driver.all("SELECT COUNT(*) AS n FROM telemetry_rule_runtime");
      expect(Number(runtimeRows?.n)).toBe(2);
      for (const r of [a!, b!]) expect(await consoleView(r)).toMatchObject({ reports: 2, agents: 2 });

      // Both agents' scores (1,500 ≥ 1,000, none over threshold): the live twin may start.
      const live = await engine.start({ type: "MLModel", version: 2, packageFile: liveFile });
      expect(live.models).toEqual([{ name: MODEL, mode: "live" }]);
    } finally {
      await db.close();
    }
  });
});
