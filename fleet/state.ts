/**
 * Durable release state: every release, where it has reached, what each
 * group ran before it, and how an abort is being carried out. Kept in the
 * fleet database (fleet/db/release-store.ts), persisted after every step,
 * and every step is recorded as an intent before its side effect, so a
 * `contentctl` killed mid-release resumes where it stopped on the next
 * command or tick. One writer at a time (the planner lock, fleet/db/lock.ts).
 * The schema here checks what the database returns; `loadReleaseState`
 * reads the JSON file earlier versions wrote, for the one-time import.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { StoreError } from "../core/errors.ts";
import { type Release, type ReleaseState, ReleaseStateSchema } from "./db/schema.ts";

export * from "./db/schema.ts";

export const MAX_LOG_ENTRIES = 200;
export const MAX_HEALTH_SAMPLES = 2000;

export function releaseStatePaths(stateDir: string) {
  return {
    /** Earlier versions' JSON state, imported once into the database. */
    state: join(stateDir, "release-state.json"),
    fleet: join(stateDir, "fleet.json"),
    packages: join(stateDir, "packages"),
  };
}

export function emptyState(): ReleaseState {
  return { schema: 1, releases: [] };
}

export function loadReleaseState(stateDir: string): ReleaseState {
  const file = releaseStatePaths(stateDir).state;
  if (!existsSync(file)) return emptyState();
  try {
    return ReleaseStateSchema.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch (e) {
    // Guessing here could re-publish a bad version or forget an abort; stop and let a person look.
    throw new StoreError("REL_STATE_CORRUPT", `${file}: unreadable release state (${(e as Error).message})`, {
      file,
      cause: e,
    });
  }
}

export function appendLog(r: Release, at: Date, event: string, detail: string, group?: string): void {
  r.log.push({ at: at.toISOString(), event, detail, ...(group ? { group } : {}) });
  if (r.log.length > MAX_LOG_ENTRIES) r.log.splice(0, r.log.length - MAX_LOG_ENTRIES);
}

/** Keeps the newest samples and every other older one, so a long release keeps its whole shape. */
export function appendHealth(r: Release, sample: Release["health"][number]): void {
  r.health.push(sample);
  if (r.health.length > MAX_HEALTH_SAMPLES) {
    const half = Math.floor(r.health.length / 2);
    r.health = [...r.health.slice(0, half).filter((_, i) => i % 2 === 0), ...r.health.slice(half)];
  }
}
