/**
 * The fleet database as the release commands and `serve` open it: the
 * database (fleet/db) plus a one-time import of the JSON state earlier
 * versions wrote — STATE/release-state.json and STATE/fleet.json are read,
 * stored, and renamed *.imported, so upgrading a deployment loses nothing
 * and no JSON file stays a second source of truth. An unreadable one stops
 * the start (REL_STATE_CORRUPT) and stays where it is.
 */
import { existsSync, renameSync } from "node:fs";
import { log } from "../core/log.ts";
import { type FleetDb, type OpenOptions, openFleetDb } from "./db/index.ts";
import { FleetRegistry } from "./fleet.ts";
import { loadReleaseState, releaseStatePaths } from "./state.ts";

const logger = log.child({ component: "fleet-db" });

export async function openReleaseDb(opts: OpenOptions): Promise<FleetDb> {
  const db = await openFleetDb(opts);
  if (opts.mode === "read") return db;
  try {
    await importLegacyJson(db, opts.stateDir);
  } catch (e) {
    await db.close();
    throw e;
  }
  return db;
}

/** One-time import of the JSON state of earlier versions, under the planner lock. */
export async function importLegacyJson(db: FleetDb, stateDir: string): Promise<void> {
  const paths = releaseStatePaths(stateDir);
  if (!existsSync(paths.state) && !existsSync(paths.fleet)) return;
  await db.lock.with(async () => {
    if (existsSync(paths.state)) {
      const legacy = loadReleaseState(stateDir); // REL_STATE_CORRUPT: keep the file, import nothing
      const current = await db.releases.load();
      const known = new Set(current.releases.map((r) => r.id));
      current.releases.push(...legacy.releases.filter((r) => !known.has(r.id)));
      await db.releases.save(current);
      renameSync(paths.state, `${paths.state}.imported`);
      logger.info("release state imported from JSON", {
        file: paths.state,
        releases: legacy.releases.length,
      });
    }
    if (existsSync(paths.fleet)) {
      const reg = FleetRegistry.load(paths.fleet);
      await db.fleet.importAgents([...reg.agents()]);
      renameSync(paths.fleet, `${paths.fleet}.imported`);
      logger.info("fleet snapshot imported from JSON", { file: paths.fleet, agents: reg.size });
    }
  });
}
