/**
 * Opens the fleet database: `--db postgres://…` for PostgreSQL, otherwise
 * the embedded SQLite file STATE/fleet.db. Migrations run at open. (The
 * JSON state of earlier versions is imported by fleet/open-db.ts.)
 *
 * `mode: "read"` (release status) never creates anything: a database
 * that is missing, unreachable or has no schema is an error, not an empty
 * fleet.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { describeError, StoreError } from "../../core/errors.ts";
import { log } from "../../core/log.ts";
import { type Driver, PostgresDriver, SqliteDriver } from "./driver.ts";
import { DbFleetStore } from "./fleet-store.ts";
import { PlannerLock } from "./lock.ts";
import { migrate, SCHEMA_VERSION, schemaVersion } from "./migrate.ts";
import { DbReleaseStore } from "./release-store.ts";

const logger = log.child({ component: "fleet-db" });

export interface FleetDb {
  readonly driver: Driver;
  readonly fleet: DbFleetStore;
  readonly releases: DbReleaseStore;
  readonly lock: PlannerLock;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** postgres://user@host:port/db, sqlite:PATH, or undefined for STATE/fleet.db. */
  url?: string;
  stateDir: string;
  mode?: "write" | "read";
  maxAgents?: number;
  /** PostgreSQL connection pool size. */
  poolSize?: number;
}

export function sqlitePath(stateDir: string): string {
  return join(stateDir, "fleet.db");
}

export async function openFleetDb(opts: OpenOptions): Promise<FleetDb> {
  const mode = opts.mode ?? "write";
  const driver = makeDriver(opts, mode);
  try {
    if (mode === "read") {
      const v = await reachable(driver);
      if (v === 0) {
        throw new StoreError(
          "REL_STATE_MISSING",
          `${driver.where}: no release state here (no fleet schema); is this the database \`contentctl serve --release\` uses?`,
          { file: driver.where },
        );
      }
      if (v > SCHEMA_VERSION) await migrate(driver); // throws REL_DB_SCHEMA_NEWER
    } else {
      await reachable(driver);
      const m = await migrate(driver);
      if (m.from !== m.to)
        logger.info("fleet database migrated", { db: driver.where, from: m.from, to: m.to });
    }
    const db: FleetDb = {
      driver,
      fleet: new DbFleetStore(driver, opts.maxAgents),
      releases: new DbReleaseStore(driver),
      lock: new PlannerLock(driver),
      close: () => driver.close(),
    };
    return db;
  } catch (e) {
    await driver.close().catch(() => {});
    throw e;
  }
}

function makeDriver(opts: OpenOptions, mode: "write" | "read"): Driver {
  const url = opts.url;
  if (url && /^postgres(ql)?:\/\//.test(url)) return new PostgresDriver(url, opts.poolSize);
  if (url && !url.startsWith("sqlite:")) {
    throw new StoreError("REL_DB_URL", `--db ${JSON.stringify(url)}: expected postgres://… or sqlite:PATH`);
  }
  const file = url ? url.slice("sqlite:".length) : sqlitePath(opts.stateDir);
  if (mode === "read" && !existsSync(file)) {
    throw new StoreError(
      "REL_STATE_MISSING",
      `${file}: no release state (the file does not exist); check --config, or that \`release start\` / \`serve --release\` ran with it`,
      { file },
    );
  }
  if (!url) mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  return new SqliteDriver(file);
}

/** The schema version, or REL_DB_UNREACHABLE when the database cannot be asked. */
async function reachable(driver: Driver): Promise<number> {
  try {
    return await schemaVersion(driver);
  } catch (e) {
    throw new StoreError(
      "REL_DB_UNREACHABLE",
      `${driver.where}: cannot read the fleet database (${describeError(e).message})`,
      { file: driver.where, cause: e },
    );
  }
}
