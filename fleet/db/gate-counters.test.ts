/**
 * The gate's counters (005_gate_counters.sql) on SQLite and PostgreSQL:
 * after a randomized run of heartbeats — state and version changes, bad
 * marks and rollbacks, group reassignment, pins, vendor and enrolled
 * senders, agents going stale and coming back, the clock read earlier by
 * another caller — every gate the planner can ask equals the from-scratch
 * scan over the agents (gate-scan.ts) and the pure reference (health.ts);
 * and two replicas storing the same agents at the same moment, while
 * sweeps run, leave them exact.
 */
import { afterAll, afterEach, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Heartbeat } from "../../core/agent/heartbeat-protocol.ts";
import { BACKENDS, type Backend, freshDbUrl, stopTestPostgres } from "../../test/fixtures/fleet-db.ts";
import { FleetRegistry } from "../fleet.ts";
import { groupHealth } from "../health.ts";
import { openReleaseDb } from "../open-db.ts";
import type { GateQuery, Sender, TenantActivity } from "./fleet-store.ts";
import type { FleetDb } from "./index.ts";

setDefaultTimeout(60_000);
afterAll(stopTestPostgres);

const T0 = Date.parse("2026-01-10T12:00:00Z");
const MIN = 60_000;
const WINDOW = 180 * MIN;
const GROUPS = ["eng-test", "internal", "public-1"];
const TYPES = ["TestText", "Other"];
const TENANTS = ["acme", "globex", "initech", "outpost"];

function rng(seed: number) {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
  return { next, pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}

type Rng = ReturnType<typeof rng>;

/** A random heartbeat of agent i: any state the gate tells apart. */
function randomHeartbeat(r: Rng, i: number, at: number): { hb: Heartbeat; sender: Sender } {
  const tenant = TENANTS[i % TENANTS.length]!;
  const content = TYPES.filter(() => r.next() < 0.8).map((type) => ({
    type,
    version: r.pick([1, 2, 2, 3, 3, 3, 4, null]),
    handlerState: r.pick(["loaded", "loaded", "loaded", "failed", "crash-looping"]),
    badVersions: r.next() < 0.15 ? [r.pick([2, 3])] : r.next() < 0.05 ? [2, 3] : [],
    crashes: r.next() < 0.1 ? 2 : 0,
    rollbacks:
      r.next() < 0.1
        ? [{ from: r.pick([2, 3]), to: 1, at: new Date(at).toISOString(), automatic: true }]
        : [],
  }));
  const policy = r.pick<Heartbeat["policy"] | undefined>([
    undefined,
    undefined,
    undefined,
    { cadence: "general", pinned: [] },
    { cadence: "pinned-n-1", pinned: [] },
    { cadence: "general", pinned: ["Other"] },
  ]);
  return {
    sender: { enrolled: r.next() < 0.7, vendor: tenant === "outpost" },
    hb: {
      schema: 1,
      agentId: `agent-${String(i).padStart(4, "0")}`,
      tenant,
      // Reassigned now and then: the counters must move the agent between groups.
      group: r.pick(GROUPS),
      agentVersion: "1.0.0",
      sentAt: new Date(at).toISOString(),
      health: r.pick(["green", "green", "green", "amber", "red"]),
      content,
      rejected: 0,
      lastRejections: [],
      ...(policy ? { policy } : {}),
    },
  };
}

const sortTenants = (xs: TenantActivity[]) =>
  xs.map((x) => JSON.stringify(x)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** Every gate question over these groups, types, versions and `since` times: counters = scan = reference. */
async function expectExact(db: FleetDb, now: number, sinces: number[], reference?: FleetRegistry) {
  const agents = reference ? await reference.list() : await db.fleet.list();
  for (const group of GROUPS) {
    for (const type of TYPES) {
      for (const version of [2, 3]) {
        for (const since of sinces) {
          for (const vendorOnly of [false, true]) {
            const q: GateQuery = { type, version, group, since, now, activeWindowMs: WINDOW, vendorOnly };
            const counted = await db.fleet.gate(q);
            const scanned = await db.fleet.scanGate(q);
            expect({ q, ...counted }).toEqual({ q, ...scanned });
            expect({ q, h: counted.health }).toEqual({ q, h: groupHealth(agents, q) });
          }
        }
      }
    }
  }
  // The console's counts: active agents per group, and per (group, tenant) with the enrolled ones.
  const active = agents.filter((a) => a.receivedAt >= now - WINDOW);
  const perGroup = new Map<string, number>();
  for (const a of active) perGroup.set(a.group, (perGroup.get(a.group) ?? 0) + 1);
  expect(await db.fleet.activeByGroup(now - WINDOW)).toEqual(perGroup);
  const perTenant = new Map<string, TenantActivity>();
  for (const a of active) {
    const t = perTenant.get(`${a.group}/${a.tenant}`) ?? {
      group: a.group,
      tenant: a.tenant,
      vendor: !!a.vendor,
      active: 0,
      enrolled: 0,
    };
    t.active++;
    if (a.enrolled) t.enrolled++;
    perTenant.set(`${a.group}/${a.tenant}`, t);
  }
  expect(sortTenants(await db.fleet.activeTenants(now - WINDOW))).toEqual(
    sortTenants([...perTenant.values()]),
  );
  const negative = await db.driver.all(
    "SELECT 'agents' AS t, COUNT(*) AS n FROM gate_agents WHERE n < 0 UNION ALL SELECT 'content', COUNT(*) FROM gate_content WHERE n < 0",
  );
  expect(negative.map((r) => Number(r.n))).toEqual([0, 0]);
}

describe.each(BACKENDS)("gate counters on %s", (backend: Backend) => {
  let dir: string;
  let url: string | undefined;
  let db: FleetDb;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "outpost-counters-"));
    url = await freshDbUrl(backend);
    db = await openReleaseDb({ url, stateDir: dir });
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("after a randomized run of heartbeats the counters equal the from-scratch aggregate", async () => {
    const r = rng(20240719);
    const ref = new FleetRegistry();
    const AGENTS = 60;
    let now = T0;
    const publishes = [0];
    for (let step = 0; step < 14; step++) {
      // Time moves on; some agents fall silent for hours (stale), others report in bursts.
      now += Math.floor(r.next() * 90) * MIN;
      if (step % 4 === 1) publishes.push(now - Math.floor(r.next() * 30) * MIN); // a release reaching a group
      const reporting = Array.from({ length: AGENTS }, (_, i) => i).filter(() => r.next() < 0.45);
      // One batch: heartbeats stored together, some agents twice (the later one wins).
      const batch = [...reporting, ...reporting.filter(() => r.next() < 0.1)].map((i) => {
        const { hb, sender } = randomHeartbeat(r, i, now);
        return { hb, sender, at: now + Math.floor(r.next() * 1000) };
      });
      const latest = new Map(batch.map((b) => [b.hb.agentId, b]));
      for (const b of latest.values()) await ref.ingest(b.hb, b.at, b.sender);
      const stored = await Promise.all(batch.map((b) => db.fleet.ingest(b.hb, b.at, b.sender)));
      expect(stored.every(Boolean)).toBe(true);
      if (step % 3 === 2) {
        await expectExact(db, now, [...publishes.slice(-2), now - 100 * MIN], ref);
        // Another caller's clock a little behind: agents swept out come back for its cut, exactly.
        await expectExact(db, now - 45 * MIN, [publishes.at(-1)!], ref);
      }
    }
    await expectExact(db, now, publishes, ref);
    // Hours later, with nobody reporting: everyone is stale and nothing is counted.
    await expectExact(db, now + 2 * WINDOW, publishes, ref);
    const left = await db.driver.all("SELECT COALESCE(SUM(n), 0) AS n FROM gate_agents");
    expect(Number(left[0]!.n)).toBe(0);
  });

  test("a heartbeat that changes nothing the gate counts writes no counter row; a change moves one agent", async () => {
    const r = rng(5);
    const { hb, sender } = randomHeartbeat(r, 1, T0);
    const q: GateQuery = {
      type: hb.content[0]?.type ?? "TestText",
      version: 3,
      group: hb.group,
      since: 0,
      now: T0,
      activeWindowMs: WINDOW,
    };
    await db.fleet.ingest(hb, T0, sender);
    await db.fleet.gate(q);
    const snapshot = async () =>
      JSON.stringify([
        await db.driver.all("SELECT * FROM gate_agents ORDER BY grp, tenant, pinned, epoch"),
        await db.driver.all("SELECT * FROM gate_content ORDER BY grp, type, version, flags, epoch"),
      ]);
    const before = await snapshot();
    await db.fleet.ingest({ ...hb, sentAt: new Date(T0 + MIN).toISOString() }, T0 + MIN, sender);
    expect(await snapshot()).toBe(before);
    await db.fleet.ingest({ ...hb, health: hb.health === "red" ? "green" : "red" }, T0 + 2 * MIN, sender);
    expect(await snapshot()).not.toBe(before);
    expect((await db.fleet.gate(q)).health).toEqual((await db.fleet.scanGate(q)).health);
  });

  // Replicas share PostgreSQL; SQLite is one process's embedded store (its write transaction
  // serialises every store, and two connections in one process would block each other's event loop).
  test.if(backend === "postgres")(
    "two replicas storing the same agents at the same moment, with sweeps beside them, keep the counters exact",
    async () => {
      const other = await openReleaseDb({ url, stateDir: dir });
      try {
        const r = rng(99);
        let now = T0;
        const publishes = [0, T0 + 30 * MIN];
        for (let round = 0; round < 12; round++) {
          now += 20 * MIN;
          // Both replicas get heartbeats of the same agents (new ones included) in the same instant.
          const ids = Array.from({ length: 40 }, (_, i) => i + (round % 3) * 10);
          const send = (replica: FleetDb) =>
            ids.map((i) => {
              const { hb, sender } = randomHeartbeat(r, i, now);
              return replica.fleet.ingest(hb, now, sender);
            });
          const gateQ: GateQuery = {
            type: "TestText",
            version: 3,
            group: "public-1",
            since: publishes[1]!,
            now: now - (round % 2) * 200 * MIN, // sweeps that take agents out and put them back
            activeWindowMs: WINDOW,
          };
          const results = await Promise.all([
            ...send(db),
            ...send(other),
            db.fleet.gate(gateQ).then(() => true),
            other.fleet.activeByGroup(now - WINDOW).then(() => true),
          ]);
          expect(results.every(Boolean)).toBe(true);
        }
        await expectExact(db, now, publishes);
        await expectExact(other, now - 100 * MIN, publishes);
      } finally {
        await other.close();
      }
    },
  );

  test("a database upgraded with agents already in it counts them at the first read", async () => {
    const r = rng(3);
    for (let i = 0; i < 30; i++) {
      const { hb, sender } = randomHeartbeat(r, i, T0);
      await db.fleet.ingest(hb, T0 - i * 10 * MIN, sender);
    }
    // As after 004 on a database of 003: rows present, nothing counted yet.
    await db.driver.run("UPDATE agents SET counted = 0");
    await db.driver.run("DELETE FROM gate_agents");
    await db.driver.run("DELETE FROM gate_content");
    await expectExact(db, T0, [0, T0 - 60 * MIN]);
  });
});
