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
import { z } from "zod";
import { StoreError } from "../core/errors.ts";
import { PreviousEntrySchema } from "../core/repo/index-format.ts";

const iso = z.iso.datetime();

export const PackageRefSchema = z
  .object({
    /** Relative to the release state folder (packages/…), content-addressed. */
    file: z.string().min(1),
    sha384: z.string().regex(/^[0-9a-f]{96}$/),
    size: z.number().int().positive(),
    signingTime: iso,
  })
  .strict();

export const GroupProgressSchema = z
  .object({
    name: z.string(),
    /**
     * What the group listed for the type just before this release reached it
     * (null: nothing). Recorded before publishing, so a resumed publish never
     * mistakes the new version for the old one.
     */
    before: PreviousEntrySchema.nullable().optional(),
    publishedAt: iso.nullable(),
    revertedAt: iso.nullable(),
  })
  .strict();

export const ReleaseSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    version: z.number().int().positive(),
    package: PackageRefSchema,
    status: z.enum(["active", "completed", "aborted"]),
    startedAt: iso,
    finishedAt: iso.nullable(),
    groups: z.array(GroupProgressSchema).min(1),
    abort: z
      .object({
        at: iso,
        reason: z.string(),
        by: z.enum(["operator", "health"]),
        /** The re-signed copy of the last good content (version + 1), per distinct previous package. */
        revertVersion: z.number().int().positive(),
        reverts: z.record(z.string(), PackageRefSchema),
      })
      .strict()
      .nullable(),
    /** Human-readable history, newest last (capped). */
    log: z.array(z.object({ at: iso, event: z.string(), group: z.string().optional(), detail: z.string() })),
    /** Health samples per live group over time, for the console (capped, thinned). */
    health: z.array(
      z
        .object({
          at: iso,
          group: z.string(),
          agents: z.number().int(),
          exposed: z.number().int(),
          affected: z.number().int(),
        })
        .strict(),
    ),
  })
  .strict();

export const ReleaseStateSchema = z
  .object({ schema: z.literal(1), releases: z.array(ReleaseSchema) })
  .strict();

export type PackageRef = z.infer<typeof PackageRefSchema>;
export type GroupProgress = z.infer<typeof GroupProgressSchema>;
export type Release = z.infer<typeof ReleaseSchema>;
export type ReleaseState = z.infer<typeof ReleaseStateSchema>;

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
