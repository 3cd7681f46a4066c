/**
 * Deployment settings of the query host (engine, host identifier, watchdog
 * defaults, log format). They come from the agent's config (`query` section),
 * which the supervisor-side service sends with `configure`; the query host
 * keeps the last ones on disk so a restarted host resumes with them before
 * the supervisor speaks again.
 */
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { byCodeUnit } from "../../core/compare.ts";
import { atomicWriteJson } from "../../core/fsutil.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import type { EngineSettings } from "../../plugins/query/engine.ts";
import { MAX_WALL_SECONDS } from "./manifest.ts";
import { DEFAULT_LIMITS, type WatchdogLimits } from "./watchdog.ts";

// The longest wall-clock limit a query may be given (settings and per-pack overrides alike); it lives
// beside the manifest, whose call budgets follow from it.
export { MAX_WALL_SECONDS } from "./manifest.ts";

export const WatchdogSettingsSchema = lazySchema(() =>
  z.strictObject({
    memoryMb: z._default(z.int().check(z.gte(1), z.lte(16384)), DEFAULT_LIMITS.memoryMb),
    cpuPercent: z._default(z.number().check(z.gte(1), z.lte(100)), DEFAULT_LIMITS.cpuPercent),
    latencySeconds: z._default(z.number().check(z.gte(0.1), z.lte(3600)), DEFAULT_LIMITS.latencySeconds),
    wallSeconds: z._default(
      z.number().check(z.gte(0.1), z.lte(MAX_WALL_SECONDS)),
      DEFAULT_LIMITS.wallSeconds,
    ),
    /** How long a query the watchdog killed stays off the schedule (osquery: 24 h). */
    denylistSeconds: z._default(z.int().check(z.gte(1), z.lte(30 * 86400)), 86400),
  }),
);

export const SettingsSchema = lazySchema(() =>
  z.strictObject({
    engine: z._default(z.enum(["embedded", "osqueryd"]), "embedded"),
    osquerySocket: z._default(z.string().check(z.minLength(1)), "/var/osquery/osquery.em"),
    osqueryTimeoutSeconds: z._default(z.number().check(z.positive(), z.lte(3600)), 30),
    /** `hostIdentifier` in every result line and the input to sharding (osquery: the host name). */
    hostIdentifier: z.optional(z.string().check(z.minLength(1), z.maxLength(255))),
    /** osquery's logger_event_type: one line per changed row (true) or one `diffResults` line per run. */
    eventFormat: z._default(z.boolean(), true),
    /** osquery's schedule_epoch: changing it restarts every differential. */
    epoch: z._default(z.int().check(z.gte(0)), 0),
    /** How often discovery queries are re-run (osquery's pack_refresh_interval). */
    packRefreshSeconds: z._default(z.int().check(z.gte(1), z.lte(86400)), 3600),
    watchdog: z.prefault(WatchdogSettingsSchema, {}),
    /** Result lines kept for the supervisor before the oldest are dropped. */
    outboxMaxBytes: z._default(z.int().check(z.gte(1024 * 1024)), 256 * 1024 * 1024),
  }),
);

export type Settings = z.infer<typeof SettingsSchema>;
export type SettingsInput = z.input<typeof SettingsSchema>;

export function defaultSettings(): Settings {
  return SettingsSchema.parse({});
}

/** Stable across key order, so both sides of the IPC agree on equal settings. */
export function settingsHash(s: Settings): string {
  const canonical = JSON.stringify(s, (_k, v) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => byCodeUnit(a, b)))
      : v,
  );
  return new Bun.CryptoHasher("sha256").update(canonical).digest("hex").slice(0, 16);
}

export function engineSettings(s: Settings): EngineSettings {
  return {
    engine: s.engine,
    osquerySocket: s.osquerySocket,
    osqueryTimeoutMs: s.osqueryTimeoutSeconds * 1000,
  };
}

export function watchdogLimits(s: Settings, overrides: Partial<WatchdogLimits> = {}): WatchdogLimits {
  const { denylistSeconds: _, ...limits } = s.watchdog;
  return { ...limits, ...overrides };
}

export function hostIdentifierOf(s: Settings): string {
  return s.hostIdentifier ?? hostname();
}

/** Last settings the supervisor sent, or the defaults (a damaged file is ignored, not fatal). */
export function loadSettings(path: string): Settings {
  if (!existsSync(path)) return defaultSettings();
  try {
    return SettingsSchema.parse(JSON.parse(readFileSync(path, "utf8")));
  } catch {
    return defaultSettings();
  }
}

export function saveSettings(path: string, s: Settings): void {
  atomicWriteJson(path, s, 0o600);
}
