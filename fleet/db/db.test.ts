/**
 * The fleet database on SQLite and on PostgreSQL: migrations, the gate
 * aggregate in SQL agreeing with the pure reference (health.ts) on a
 * mixed fleet (tenants, vendor and enrolled senders, pinned agents: G1–G5), the agent cap, the one-time import of the JSON state
 * earlier versions wrote, and the planner lock.
 */
import { afterAll, afterEach, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import type { Heartbeat } from "../../core/agent/heartbeat-protocol.ts";
import { isOutpostError } from "../../core/errors.ts";
import { BACKENDS, type Backend, freshDbUrl, stopTestPostgres } from "../../test/fixtures/fleet-db.ts";
import { FleetRegistry } from "../fleet.ts";
import { type GroupHealth, groupHealth, judge } from "../health.ts";
import { openReleaseDb } from "../open-db.ts";
import { releaseStatePaths } from "../state.ts";
import type { Sender, TenantActivity } from "./fleet-store.ts";
import type { FleetDb } from "./index.ts";
import { PlannerLock } from "./lock.ts";
import { SCHEMA_VERSION, schemaVersion } from "./migrate.ts";

setDefaultTimeout(30_000);
afterAll(stopTestPostgres);

const NOW = Date.parse("2026-01-10T12:00:00Z");
const MIN = 60_000;

function heartbeat(
  i: number,
  over: Partial<Heartbeat> = {},
  content: Partial<Heartbeat["content"][0]> = {},
): Heartbeat {
  return {
    schema: 1,
    agentId: `agent-${i}`,
    tenant: "acme",
    group: "eng-test",
    agentVersion: "1.0.0",
    sentAt: new Date(NOW).toISOString(),
    health: "green",
    content: [
      {
        type: "TestText",
        version: 2,
        handlerState: "loaded",
        badVersions: [],
        crashes: 0,
        rollbacks: [],
        ...content,
      },
    ],
    rejected: 0,
    lastRejections: [],
    ...over,
  };
}

/** A fleet with every case the gate distinguishes, seeded, with its arrival times. */
function mixedFleet(): { hb: Heartbeat; at: number; sender: Sender }[] {
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
  return Array.from({ length: 400 }, (_, i) => {
    const version = pick([1, 2, 2, 2, null]);
    const rb = rnd() < 0.1 ? [{ from: 2, to: 1, at: new Date(NOW).toISOString(), automatic: true }] : [];
    // Tenants of both kinds, enrolled or not, and agents holding TestText back (G1, G2, G4).
    const tenant = pick(["acme", "acme", "acme", "globex", "outpost"]);
    const policy = pick<Heartbeat["policy"]>([
      undefined,
      undefined,
      { cadence: "general", pinned: [] },
      { cadence: "pinned-n-1", pinned: [] },
      { cadence: "early", pinned: ["TestText"] },
      { cadence: "general", pinned: ["Other"] },
    ]);
    return {
      at: NOW - Math.floor(rnd() * 300) * MIN,
      sender: { enrolled: rnd() < 0.5, vendor: tenant === "outpost" },
      hb: heartbeat(
        i,
        {
          tenant,
          group: pick(["eng-test", "internal"]),
          health: pick(["green", "green", "amber", "red"]),
          ...(policy ? { policy } : {}),
        },
        {
          version,
          crashes: rnd() < 0.1 ? 1 : 0,
          handlerState: pick(["loaded", "loaded", "failed", "crash-looping"]),
          badVersions: rnd() < 0.1 ? [2] : rnd() < 0.1 ? [12] : [],
          rollbacks: rb,
        },
      ),
    };
  });
}

describe.each(BACKENDS)("fleet database on %s", (backend: Backend) => {
  let dir: string;
  let db: FleetDb;
  let url: string | undefined;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "outpost-fleetdb-"));
    url = await freshDbUrl(backend);
    db = await openReleaseDb({ url, stateDir: dir, maxAgents: 1000 });
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("migrations are applied once and recorded; reopening changes nothing", async () => {
    expect(await schemaVersion(db.driver)).toBe(SCHEMA_VERSION);
    const again = await openReleaseDb({ url, stateDir: dir });
    const rows = await again.driver.all("SELECT version, name FROM schema_version");
    await again.close();
    expect(rows).toEqual([
      { version: 1, name: "001_fleet_state" },
      { version: 2, name: "002_identity_gate" },
      { version: 3, name: "003_identity" },
      { version: 4, name: "004_exclusions" },
      { version: 5, name: "005_gate_counters" },
      { version: 6, name: "006_telemetry" },
    ]);
  });

  test("a database from a newer contentctl is refused, not used (REL_DB_SCHEMA_NEWER)", async () => {
    await db.driver.run("INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)", [
      SCHEMA_VERSION + 1,
      "999_future",
      new Date().toISOString(),
    ]);
    const e = await openReleaseDb({ url, stateDir: dir }).catch((x) => x);
    expect(isOutpostError(e) && e.code).toBe("REL_DB_SCHEMA_NEWER");
  });

  test("the SQL gate aggregate equals the reference over the agents, for every group and window", async () => {
    const ref = new FleetRegistry();
    for (const { hb, at, sender } of mixedFleet()) {
      await ref.ingest(hb, at, sender);
      expect(await db.fleet.ingest(hb, at, sender)).toBe(true);
    }
    expect(await db.fleet.count()).toBe(400);
    for (const group of ["eng-test", "internal", "public-1"]) {
      for (const since of [NOW - 240 * MIN, NOW - 60 * MIN, NOW]) {
        for (const version of [2, 12]) {
          for (const vendorOnly of [false, true]) {
            const q = {
              type: "TestText",
              version,
              group,
              since,
              now: NOW,
              activeWindowMs: 180 * MIN,
              vendorOnly,
            };
            const want: GroupHealth = groupHealth(await ref.list(), q);
            const got = await db.fleet.groupHealth(q);
            expect(got).toEqual(want);
            // The weighted judgement (G4, G5) is the pure function over these per-tenant counts.
            const rules = { threshold: 0.05, minSample: 20, minAdoption: 0.5, maxTenantShare: 0.4 };
            expect(judge(got, rules)).toEqual(judge(want, rules));
          }
        }
      }
    }
    expect(await db.fleet.activeByGroup(NOW - 180 * MIN)).toEqual(await ref.activeByGroup(NOW - 180 * MIN));
    const byKey = (xs: TenantActivity[]) =>
      xs.map((x) => JSON.stringify(x)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    expect(byKey(await db.fleet.activeTenants(NOW - 180 * MIN))).toEqual(
      byKey(await ref.activeTenants(NOW - 180 * MIN)),
    );
    // What the registry and the database keep of each agent (identity, pins) is the same.
    expect(await db.fleet.list()).toEqual(
      (await ref.list()).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    );
    const { reasons } = await db.fleet.gate({
      type: "TestText",
      version: 2,
      group: "eng-test",
      since: 0,
      now: NOW,
      activeWindowMs: 180 * MIN,
    });
    expect(reasons.markedBad + reasons.rolledBack + reasons.crashes + reasons.healthRed).toBeGreaterThan(0);
  });

  test("a heartbeat replaces the agent's content: types it no longer reports go; the later of two wins", async () => {
    await db.fleet.ingest(
      heartbeat(1, { content: [...heartbeat(1).content, { ...heartbeat(1).content[0]!, type: "Other" }] }),
      NOW,
    );
    await Promise.all([
      db.fleet.ingest(heartbeat(1), NOW + 1),
      db.fleet.ingest(heartbeat(1, { health: "red" }), NOW + 2),
    ]);
    const [a] = await db.fleet.list();
    expect(Object.keys(a!.content)).toEqual(["TestText"]);
    expect(a!.health).toBe("red");
    expect(a!.receivedAt).toBe(NOW + 2);
  });

  test("at the agent cap new ids are refused and known agents still report", async () => {
    const small = await openReleaseDb({ url, stateDir: dir, maxAgents: 3 });
    try {
      const r = await Promise.all([1, 2, 3, 4].map((i) => small.fleet.ingest(heartbeat(i), NOW)));
      expect(r.filter(Boolean)).toHaveLength(3);
      expect(await small.fleet.ingest(heartbeat(5), NOW)).toBe(false);
      const known = (await small.fleet.list())[0]!.id.split("/")[1]!;
      expect(await small.fleet.ingest({ ...heartbeat(0), agentId: known }, NOW + 1)).toBe(true);
      expect(await small.fleet.count()).toBe(3);
    } finally {
      await small.close();
    }
  });

  test("the planner lock has one holder; a second waits, then gets it", async () => {
    const other = await openReleaseDb({ url, stateDir: dir });
    try {
      let release!: () => void;
      const held = db.lock.tryWith(() => new Promise<void>((r) => (release = r)));
      const end = Date.now() + 10_000;
      while ((await other.lock.holder()) === undefined && Date.now() < end) await Bun.sleep(10);
      expect(await other.lock.tryWith(async () => "ran", { waitMs: 0 })).toBeUndefined();
      const e = await other.lock.with(async () => "ran", { waitMs: 100 }).catch((x) => x);
      expect(isOutpostError(e) && e.code).toBe("REL_LOCKED");
      release();
      await held;
      expect(await other.lock.tryWith(async () => "ran", { waitMs: 0 })).toEqual({ value: "ran" });
    } finally {
      await other.close();
    }
  });
});

describe("SQLite lease", () => {
  test("a lease whose owner process died is taken at once; a live one only when it expires", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-lease-"));
    const db = await openReleaseDb({ stateDir: dir });
    try {
      const dead = Bun.spawnSync(["true"]).pid;
      const put = (owner: string, expires: number) =>
        db.driver.run(
          "INSERT INTO leases (name, owner, expires_at) VALUES ('release-planner', $1, $2) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
          [owner, expires],
        );
      const lock = new PlannerLock(db.driver);
      await put(`${hostname()}:${dead}:x`, Date.now() + 60_000);
      expect(await lock.tryWith(async () => 1)).toEqual({ value: 1 });
      await put(`other-host:${process.pid}:y`, Date.now() + 60_000);
      expect(await lock.tryWith(async () => 1)).toBeUndefined();
      await put(`other-host:${process.pid}:y`, Date.now() - 1);
      expect(await lock.tryWith(async () => 1)).toEqual({ value: 1 });
      expect(await lock.holder()).toBeUndefined();
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("JSON state of earlier versions", () => {
  test("is imported once at first start, then renamed; a second start imports nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-import-"));
    try {
      const paths = releaseStatePaths(dir);
      const sha = "a".repeat(96);
      const release = {
        id: "TestText-2",
        type: "TestText",
        version: 2,
        package: { file: "packages/x.tar", sha384: sha, size: 10, signingTime: "2026-01-01T00:00:00.000Z" },
        status: "active",
        startedAt: "2026-01-01T00:00:00.000Z",
        finishedAt: null,
        groups: [
          { name: "eng-test", before: null, publishedAt: "2026-01-01T00:00:01.000Z", revertedAt: null },
          { name: "internal", publishedAt: null, revertedAt: null },
        ],
        abort: null,
        log: [{ at: "2026-01-01T00:00:00.000Z", event: "started", detail: "x" }],
        health: [{ at: "2026-01-01T00:01:00.000Z", group: "eng-test", agents: 3, exposed: 2, affected: 0 }],
      };
      writeFileSync(paths.state, JSON.stringify({ schema: 1, releases: [release] }));
      const reg = new FleetRegistry();
      await reg.ingest(heartbeat(1), NOW);
      writeFileSync(
        paths.fleet,
        JSON.stringify({ schema: 1, savedAt: new Date(NOW).toISOString(), agents: await reg.list() }),
      );
      const db = await openReleaseDb({ stateDir: dir });
      try {
        expect((await db.releases.load()).releases).toEqual([release as never]);
        expect(await db.fleet.list()).toEqual(await reg.list());
        expect(existsSync(paths.state) || existsSync(paths.fleet)).toBe(false);
        expect(existsSync(`${paths.state}.imported`)).toBe(true);
      } finally {
        await db.close();
      }
      const again = await openReleaseDb({ stateDir: dir });
      expect((await again.releases.load()).releases).toHaveLength(1);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an unreadable JSON state is not imported and stops the start (REL_STATE_CORRUPT); the file stays", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-import-"));
    try {
      writeFileSync(releaseStatePaths(dir).state, "{not json");
      const e = await openReleaseDb({ stateDir: dir }).catch((x) => x);
      expect(isOutpostError(e) && e.code).toBe("REL_STATE_CORRUPT");
      expect(existsSync(releaseStatePaths(dir).state)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("the gate query reads the (group, type, received_at) index, not the table", async () => {
  const dir = mkdtempSync(join(tmpdir(), "outpost-plan-"));
  const db = await openReleaseDb({ stateDir: dir });
  try {
    const gate = await db.driver.all(
      "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM agent_content WHERE grp = $1 AND type = $2 AND received_at >= $3",
      ["eng-test", "TestText", 0],
    );
    const active = await db.driver.all(
      "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM agents WHERE grp = $1 AND received_at >= $2",
      ["eng-test", 0],
    );
    expect(gate.map((r) => String(r.detail)).join(" ")).toMatch(/USING (COVERING )?INDEX agent_content_gate/);
    expect(active.map((r) => String(r.detail)).join(" ")).toContain(
      "USING COVERING INDEX agents_grp_received",
    );
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
