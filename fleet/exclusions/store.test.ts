/**
 * The exclusion store on the fleet database, on SQLite and PostgreSQL: a
 * steady summary is read, not rewritten; a changed one is written and asks
 * for the list again; a list is stored once per hash; two stores on one
 * database (two replicas) see each other's rows.
 */
import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExclusionReport } from "../../core/exclusions/report.ts";
import { BACKENDS, type Backend, freshDbUrl, stopTestPostgres } from "../../test/fixtures/fleet-db.ts";
import type { Driver } from "../db/driver.ts";
import type { FleetDb } from "../db/index.ts";
import { openReleaseDb } from "../open-db.ts";
import { ExclusionStore } from "./store.ts";

afterAll(() => stopTestPostgres());

const list: ExclusionReport["exclusions"] = [
  {
    kind: "path",
    value: "/var/lib/postgresql/15/main",
    scope: ["onAccess", "scan"],
    reason: "data",
    source: "APPFEED:postgresql",
  },
];
const hash = createHash("sha256").update(JSON.stringify(list)).digest("hex");
const report = (agentId: string): ExclusionReport => ({
  schema: 1,
  agentId,
  tenant: "acme",
  sentAt: new Date().toISOString(),
  summary: { count: 1, hash, bySource: { APPFEED: 1 } },
  exclusions: list,
});

/** Counts the statements that write (run) — reads go through all(). */
function counting(d: Driver): Driver & { writes: number } {
  const c = Object.create(d) as Driver & { writes: number };
  c.writes = 0;
  c.run = (sql, params) => {
    c.writes++;
    return d.run(sql, params);
  };
  c.all = (sql, params) => d.all(sql, params);
  return c;
}

describe.each(BACKENDS)("exclusion store on %s", (backend: Backend) => {
  let dir: string;
  let a: FleetDb;
  let b: FleetDb;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "outpost-excl-store-"));
    const url = await freshDbUrl(backend);
    a = await openReleaseDb({ url, stateDir: dir });
    b = await openReleaseDb({ url, stateDir: dir });
  });
  afterEach(async () => {
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a steady summary costs a read, not a write; a list is stored once and held for every replica", async () => {
    const driver = counting(a.driver);
    const one = new ExclusionStore(driver);
    const two = new ExclusionStore(b.driver);
    const at = new Date("2026-12-01T10:00:00Z");
    const summary = { count: 1, hash, bySource: { APPFEED: 1 } };
    expect(await one.noteSummary("acme", "agent-0001", summary, at)).toBe(true);
    expect(driver.writes).toBe(1);
    expect(await one.noteSummary("acme", "agent-0001", summary, new Date(at.getTime() + 60_000))).toBe(true);
    expect(driver.writes).toBe(1); // unchanged: nothing rewritten
    expect(await two.expects("acme", "agent-0001", hash, 1)).toBe(true);
    expect(await two.storeList("acme", report("agent-0001"), at)).toBe(true);
    expect(await one.storeList("acme", report("agent-0001"), at)).toBe(false);
    // Held now, through the other replica: the heartbeat does not ask, and no copy is expected.
    expect(await one.noteSummary("acme", "agent-0001", summary, at)).toBe(false);
    expect(await one.expects("acme", "agent-0001", hash, 1)).toBe(false);
    expect(await one.agent("agent-0001")).toMatchObject({
      tenant: "acme",
      count: 1,
      hash,
      bySource: { APPFEED: 1 },
      summaryAt: at.toISOString(),
      listHash: hash,
      stale: false,
      exclusions: list,
    });
    // A new summary: written, the held list is stale, and the fleet asks again.
    const next = { count: 2, hash: "f".repeat(64), bySource: { APPFEED: 2 } };
    expect(await two.noteSummary("acme", "agent-0001", next, at)).toBe(true);
    expect(await one.agent("agent-0001")).toMatchObject({ count: 2, stale: true, exclusions: list });
    expect((await one.agents()).map((r) => [r.agentId, r.count, r.listHash])).toEqual([
      ["agent-0001", 2, hash],
    ]);
    expect(await one.agent("agent-never")).toBeNull();
  });
});
