/**
 * Versioned schema migrations, applied in order at start and recorded in
 * `schema_version`. Every migration runs in one transaction with its
 * version row, so a process killed half-way leaves the previous version,
 * never half a schema. Replicas starting together serialise on the
 * transaction (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE).
 */
import { StoreError } from "../../core/errors.ts";
import type { Driver } from "./driver.ts";
import m001 from "./migrations/001_fleet_state.sql" with { type: "text" };
import m002 from "./migrations/002_identity_gate.sql" with { type: "text" };
import m003 from "./migrations/003_identity.sql" with { type: "text" };
import m004 from "./migrations/004_exclusions.sql" with { type: "text" };
import m005 from "./migrations/005_gate_counters.sql" with { type: "text" };
import m006 from "./migrations/006_telemetry.sql" with { type: "text" };

/** Append only: a released migration is never edited, a change is a new one. */
export const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  { version: 1, name: "001_fleet_state", sql: m001 },
  { version: 2, name: "002_identity_gate", sql: m002 },
  { version: 3, name: "003_identity", sql: m003 },
  { version: 4, name: "004_exclusions", sql: m004 },
  { version: 5, name: "005_gate_counters", sql: m005 },
  { version: 6, name: "006_telemetry", sql: m006 },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;
const MIGRATE_LOCK = 0x6f757470; // "outp": the migration advisory lock key

/** The schema version the database is at; 0 when it has none (fresh). */
export async function schemaVersion(db: Driver): Promise<number> {
  const exists =
    db.dialect === "sqlite"
      ? await db.all("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
      : await db.all(
          "SELECT 1 FROM information_schema.tables WHERE table_name = 'schema_version' AND table_schema = current_schema()",
        );
  if (exists.length === 0) return 0;
  const rows = await db.all("SELECT MAX(version) AS v FROM schema_version");
  return Number(rows[0]?.v ?? 0);
}

export async function migrate(db: Driver, now = new Date()): Promise<{ from: number; to: number }> {
  const from = await schemaVersion(db);
  if (from > SCHEMA_VERSION) {
    throw new StoreError(
      "REL_DB_SCHEMA_NEWER",
      `${db.where}: fleet database is at schema version ${from}, this contentctl knows up to ${SCHEMA_VERSION}; upgrade contentctl`,
      { file: db.where },
    );
  }
  for (const m of MIGRATIONS) {
    await db.tx(async (q) => {
      if (db.dialect === "postgres") await q.all("SELECT pg_advisory_xact_lock($1)", [MIGRATE_LOCK]);
      await q.run(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
      );
      // Another replica may have applied it while this one waited for the lock.
      const done = await q.all("SELECT 1 FROM schema_version WHERE version = $1", [m.version]);
      if (done.length > 0) return;
      for (const stmt of splitStatements(m.sql)) await q.run(stmt);
      await q.run("INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)", [
        m.version,
        m.name,
        now.toISOString(),
      ]);
    });
  }
  return { from, to: SCHEMA_VERSION };
}

/** Statements of a migration file: `;` at a line end closes one; `--` comments are dropped. */
export function splitStatements(sql: string): string[] {
  return sql
    .split("\n")
    .map((l) => l.replace(/--.*$/, ""))
    .join("\n")
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
