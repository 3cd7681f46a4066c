/**
 * Stateless replicas: two `contentctl serve --release --db postgres://…`
 * processes on one throwaway PostgreSQL cluster. Heartbeats sent to either
 * are one fleet; while the planner lock is held elsewhere neither replica
 * ticks; a replica SIGKILLed in the middle of an abort loses nothing — the
 * other takes the lock and finishes taking the groups back, once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Heartbeat } from "../../core/agent/heartbeat-protocol.ts";
import { sha256Hex } from "../../core/crypto/digest.ts";
import { publish, readRepoIndex } from "../../core/repo/publish.ts";
import { freshDbUrl, havePostgres, stopTestPostgres } from "../../test/fixtures/fleet-db.ts";
import { type Replica, startReplica } from "../../test/fixtures/replica.ts";
import { makeVendor, type Vendor } from "../../test/fixtures/vendor.ts";
import { loadReleaseConfig } from "../config.ts";
import { ReleaseEngine } from "../engine.ts";
import { openReleaseDb } from "../open-db.ts";
import type { FleetDb } from "./index.ts";

setDefaultTimeout(60_000);
const TOKEN = "replica-test-token-0123456789";
const OPERATOR = "replica-operator-token-0123456789";

let vendor: Vendor;
let dir: string;
let cfg: string;
let url: string;
let db: FleetDb;

async function until(what: string, ok: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

async function replica(): Promise<Replica> {
  return startReplica(vendor.repo, cfg, url);
}

function heartbeat(id: number, group: string, over: Partial<Heartbeat["content"][number]> = {}): Heartbeat {
  return {
    schema: 1,
    agentId: `agent-${String(id).padStart(4, "0")}`,
    tenant: "acme",
    group,
    agentVersion: "1.0.0",
    sentAt: new Date().toISOString(),
    health: "green",
    content: [
      {
        type: "TestText",
        version: 2,
        handlerState: "loaded",
        badVersions: [],
        crashes: 0,
        rollbacks: [],
        ...over,
      },
    ],
    rejected: 0,
    lastRejections: [],
  };
}

const post = (r: Replica, hb: Heartbeat) =>
  fetch(new URL("/fleet/heartbeat", r.url), {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(hb),
  });

beforeAll(async () => {
  if (!havePostgres) return;
  vendor = await makeVendor();
  dir = mkdtempSync(join(tmpdir(), "outpost-replicas-"));
  cfg = join(dir, "release.json");
  writeFileSync(
    cfg,
    JSON.stringify({
      repo: vendor.repo,
      keys: vendor.keysDir,
      stateDir: "state",
      groups: [
        { name: "eng-test", promote: "manual", soakMinutes: 60 },
        { name: "internal", promote: "manual", soakMinutes: 60 },
        { name: "public-1", promote: "auto", soakMinutes: 60 },
      ],
      health: { threshold: 0.005, minSample: 3, minAdoption: 0.5, activeWindowMinutes: 180 },
      fleet: {
        tenants: { acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)) } },
        // Unsigned heartbeats (the compatibility mode); signed ones: fleet/identity/*.test.ts.
        identity: { allowUnenrolled: true },
      },
      console: { operators: { alice: { tokenSha256: sha256Hex(new TextEncoder().encode(OPERATOR)) } } },
      tickSeconds: 3600,
    }),
  );
  const old = new Date(Date.now() - 3600_000);
  const v1 = await vendor.pack("TestText", 1, { "data.txt": "one" }, { now: old });
  for (const g of ["eng-test", "internal", "public-1"]) {
    await publish({ repo: vendor.repo, group: g, keys: vendor.keysDir, packageBytes: v1, now: old });
  }
  url = (await freshDbUrl("postgres"))!;
  db = await openReleaseDb({ url, stateDir: join(dir, "state") });
});

afterAll(async () => {
  if (!havePostgres) return;
  await db.close();
  await stopTestPostgres();
  vendor.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!havePostgres)("two replicas on one PostgreSQL", () => {
  test("one fleet, one planner at a time, a replica killed mid-abort loses nothing", async () => {
    // The release reaches eng-test and internal (operator, through the same database).
    const engine = new ReleaseEngine({ config: loadReleaseConfig(cfg), db });
    const pkg = join(dir, "TestText-2.tar");
    writeFileSync(pkg, await vendor.pack("TestText", 2, { "data.txt": "two" }));
    await engine.start({ type: "TestText", version: 2, packageFile: pkg });
    await engine.promote({ force: true, reason: "test: reach internal without soaking" });

    const [a, b] = await Promise.all([replica(), replica()]);
    try {
      // Heartbeats to both replicas land in one fleet.
      const sent = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          post(i % 2 ? b : a, heartbeat(i, i < 10 ? "eng-test" : "internal")),
        ),
      );
      expect(sent.map((r) => r.status)).toEqual(Array(20).fill(204));
      expect(await db.fleet.count()).toBe(20);
      const status = (await (
        await fetch(new URL("/console/status.json", b.url), {
          headers: { authorization: `Bearer ${OPERATOR}` },
        })
      ).json()) as {
        groups: { name: string; agents: number }[];
      };
      expect(status.groups.map((g) => g.agents)).toEqual([10, 10, 0]);

      // While someone else holds the planner lock, a crash report makes neither replica tick.
      let release!: () => void;
      const held = new Promise<void>((r) => {
        release = r;
      });
      const holding = db.lock.tryWith(() => held, { waitMs: 0 });
      await until("the test to hold the lock", async () => (await db.lock.holder()) !== undefined);
      expect((await post(a, heartbeat(0, "eng-test", { crashes: 1 }))).status).toBe(204);
      expect((await post(b, heartbeat(1, "eng-test", { crashes: 1 }))).status).toBe(204);
      await Bun.sleep(600); // both replicas' trouble ticks (250 ms) have come and gone
      expect((await db.releases.load()).releases[0]?.status).toBe("active");
      release();
      expect(await holding).toBeDefined();

      // Replica A ticks on the next crash report; kill it while the abort is under way.
      expect((await post(a, heartbeat(2, "eng-test", { crashes: 1 }))).status).toBe(204);
      await until("the abort to be recorded", async () => {
        const [r] = await db.driver.all("SELECT status FROM releases");
        return r?.status === "aborted";
      });
      a.proc.kill("SIGKILL");
      await a.proc.exited;
      const mid = (await db.releases.load()).releases[0]!;
      expect(mid.abort?.by).toBe("health");

      // B takes over on its next tick and finishes exactly what was left, once.
      await until("B to finish the abort", async () => {
        await post(b, heartbeat(3, "eng-test", { crashes: 1 }));
        const r = (await db.releases.load()).releases[0]!;
        return r.groups.slice(0, 2).every((g) => g.revertedAt !== null);
      });
      const done = (await db.releases.load()).releases[0]!;
      expect(done.log.filter((l) => l.event === "aborted")).toHaveLength(1);
      expect(
        done.groups.map((g) => (g.revertedAt ? "reverted" : g.publishedAt ? "live" : "untouched")),
      ).toEqual(["reverted", "reverted", "untouched"]);
      // Both reached groups list the same re-signed last-good package (v3 = v1's payload).
      const eng = readRepoIndex(vendor.repo, "eng-test")!.content.TestText!;
      const internal = readRepoIndex(vendor.repo, "internal")!.content.TestText!;
      expect([eng.version, internal.version]).toEqual([3, 3]);
      expect(eng.sha384).toBe(internal.sha384);
      expect(readRepoIndex(vendor.repo, "public-1")!.content.TestText!.version).toBe(1);
      // Every acknowledged heartbeat is there, A's included.
      expect(await db.fleet.count()).toBe(20);
    } finally {
      a.proc.kill("SIGKILL");
      b.proc.kill("SIGKILL");
    }
  });
});
