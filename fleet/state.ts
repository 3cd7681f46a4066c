/**
 * Durable release state (STATE/release-state.json): every release, where it
 * has reached, what each group ran before it, and how an abort is being
 * carried out. Written with temp + fsync + rename after every step, and
 * every step is recorded as an intent before its side effect, so a
 * `contentctl` killed mid-release resumes where it stopped on the next
 * command or tick. One writer at a time (STATE/release.lock).
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { pidAlive } from "../core/agent/lock.ts";
import { StoreError, UpdateError } from "../core/errors.ts";
import { atomicWriteJson } from "../core/fsutil.ts";
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
    /** closed: finished by an operator (`release close`) without completing; nothing is taken back. */
    status: z.enum(["active", "completed", "aborted", "closed"]),
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
    /** ML models the package carries and their modes (MLModel only), for the live-model gate (T3). */
    models: z.array(z.object({ name: z.string(), mode: z.enum(["telemetry", "live"]) }).strict()).optional(),
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
    state: join(stateDir, "release-state.json"),
    lock: join(stateDir, "release.lock"),
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

export function saveReleaseState(stateDir: string, state: ReleaseState): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  atomicWriteJson(releaseStatePaths(stateDir).state, state, 0o600);
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

/**
 * Cross-process mutual exclusion for release state: `contentctl serve`
 * ticking and an operator's `release promote` must not interleave. A lock
 * whose owner died is taken over; a live one is waited for briefly.
 */
export async function withStateLock<T>(
  stateDir: string,
  fn: () => Promise<T>,
  opts: { waitMs?: number } = {},
): Promise<T> {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const lock = releaseStatePaths(stateDir).lock;
  const deadline = Date.now() + (opts.waitMs ?? 15_000);
  for (;;) {
    try {
      const fd = openSync(lock, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const owner = readOwner(lock);
    // An empty lock younger than a few seconds is one being created right now, not a dead one.
    const fresh = owner === undefined && Date.now() - mtimeMs(lock) < 5000;
    if (!fresh && (owner === undefined || !pidAlive(owner))) {
      rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      throw new UpdateError("REL_LOCKED", `${lock}: release state is locked by pid ${owner ?? "?"}`, {
        file: lock,
      });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function readOwner(lock: string): number | undefined {
  try {
    const pid = Number(readFileSync(lock, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
