/**
 * The fleet suites run once per database: SQLite always, PostgreSQL when
 * Debian's postgresql is installed (.ci/run installs it). One throwaway
 * cluster per test file (plugins/sinks/testutil/servers.ts starts it as an
 * unprivileged user in a temp dir); each test gets a database of its own.
 */
import { havePostgres, type Postgres, startPostgres } from "../../plugins/sinks/testutil/servers.ts";
import { type FleetDb, openFleetDb } from "./index.ts";

export type Backend = "sqlite" | "postgres";
export const BACKENDS: Backend[] = havePostgres ? ["sqlite", "postgres"] : ["sqlite"];

let pg: Promise<Postgres> | undefined;
let n = 0;

/** A database URL for a fresh, empty database (undefined: the SQLite default under the state dir). */
export async function freshDbUrl(backend: Backend): Promise<string | undefined> {
  if (backend === "sqlite") return undefined;
  pg ??= startPostgres();
  const server = await pg;
  const name = `fleet_${process.pid}_${++n}`;
  await server.query(`CREATE DATABASE ${name}`);
  return server.url.replace(/\/postgres$/, `/${name}`);
}

export async function freshDb(backend: Backend, stateDir: string): Promise<FleetDb> {
  return openFleetDb({ url: await freshDbUrl(backend), stateDir });
}

/** Stops the cluster this file started, if any. */
export async function stopTestPostgres(): Promise<void> {
  const p = pg;
  pg = undefined;
  (await p?.catch(() => undefined))?.destroy();
}
