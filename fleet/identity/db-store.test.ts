/**
 * The identity store on the fleet database, on SQLite and PostgreSQL: two
 * stores on one database stand for two replicas — an agent enrolled through
 * one is known to the other at once, a heartbeat sequence number accepted by
 * one is a replay to the other (I4), both append to one audit trail (O4) —
 * and the files an earlier version wrote are imported once.
 */
import { afterAll, afterEach, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BACKENDS, type Backend, freshDbUrl, stopTestPostgres } from "../../test/fixtures/fleet-db.ts";
import type { FleetDb } from "../db/index.ts";
import { openReleaseDb } from "../open-db.ts";
import { DbIdentityStore } from "./db-store.ts";
import { type AuditRecord, type Enrollment, FileIdentityStore } from "./store.ts";

setDefaultTimeout(30_000);
afterAll(stopTestPostgres);

const NOW = Date.parse("2026-03-01T12:00:00.000Z");
const enrollment = (agentId: string, at = NOW): Enrollment => ({
  tenant: "acme",
  agentId,
  group: "public-1",
  alg: "Ed25519",
  publicKey: "k".repeat(59),
  vendor: false,
  enrolledAt: new Date(at).toISOString(),
});
const record = (actor: string, action: AuditRecord["action"]): AuditRecord => ({
  at: new Date(NOW).toISOString(),
  actor,
  action,
  release: "TestText-2",
  reason: `${actor} did it`,
});

describe.each(BACKENDS)("identity store on %s", (backend: Backend) => {
  let dir: string;
  let url: string | undefined;
  let db: FleetDb;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "outpost-iddb-"));
    url = await freshDbUrl(backend);
    db = await openReleaseDb({ url, stateDir: dir });
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("two replicas share enrollments, refuse each other's replays and write one audit trail", async () => {
    const other = await openReleaseDb({ url, stateDir: dir });
    try {
      const a = await DbIdentityStore.open(db.driver, dir);
      const b = await DbIdentityStore.open(other.driver, dir);
      expect(await b.enrollment("acme", "agent-0001")).toBeUndefined();
      await a.addEnrollment(enrollment("agent-0001"));
      await a.addEnrollment(enrollment("agent-0002", NOW - 2 * 3600_000));
      expect(await b.enrollment("acme", "agent-0001")).toEqual(enrollment("agent-0001"));
      expect(await b.enrollmentCounts("acme", NOW - 3600_000)).toEqual({ total: 2, recent: 1 });
      expect(await b.enrollmentCounts("globex", 0)).toEqual({ total: 0, recent: 0 });
      // An id cannot be enrolled twice (E4 checks first; the key makes it hold under a race too).
      await expect(b.addEnrollment(enrollment("agent-0001"))).rejects.toThrow();

      expect(await a.advanceSequence("acme", "agent-0001", 7)).toBe(true);
      expect(await b.advanceSequence("acme", "agent-0001", 7)).toBe(false);
      expect(await b.advanceSequence("acme", "agent-0001", 6)).toBe(false);
      expect(await b.advanceSequence("acme", "agent-0001", 8)).toBe(true);
      expect(await a.advanceSequence("acme", "agent-0001", 8)).toBe(false);
      // The same heartbeat at both replicas at once: exactly one takes it.
      const race = await Promise.all([
        a.advanceSequence("acme", "agent-0001", 9),
        b.advanceSequence("acme", "agent-0001", 9),
      ]);
      expect(race.filter(Boolean)).toHaveLength(1);

      await a.appendAudit(record("alice", "promote"));
      await b.appendAudit({ ...record("scheduler", "abort"), group: "public-1" });
      await a.appendAudit(record("bob", "close"));
      expect((await a.audit()).map((r) => [r.actor, r.action, r.group])).toEqual([
        ["alice", "promote", undefined],
        ["scheduler", "abort", "public-1"],
        ["bob", "close", undefined],
      ]);
    } finally {
      await other.close();
    }
  });

  test("the files an earlier version wrote are imported once, into empty tables", async () => {
    const files = new FileIdentityStore(dir);
    await files.addEnrollment(enrollment("agent-0001"));
    await files.appendAudit(record("alice", "abort"));
    const first = await DbIdentityStore.open(db.driver, dir);
    expect((await first.enrollments()).map((e) => e.agentId)).toEqual(["agent-0001"]);
    expect((await first.audit()).map((r) => r.actor)).toEqual(["alice"]);
    // Written to the files after the import (an old contentctl): not imported again over newer rows.
    await files.addEnrollment(enrollment("agent-0002"));
    const again = await DbIdentityStore.open(db.driver, dir);
    expect((await again.enrollments()).map((e) => e.agentId)).toEqual(["agent-0001"]);
    expect(await again.audit()).toHaveLength(1);
  });
});
