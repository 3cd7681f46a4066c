/**
 * osquery pack files, read the way osqueryd reads them (osquery
 * config/packs.cpp): `queries` with `query`, `interval` (number or numeric
 * string, default 3600, at most 604800), `snapshot`, `removed` (default
 * true), `platform`, `version`, `shard` (1–100), `denylist` (default true;
 * the old name `blacklist` too), plus pack-level `platform`, `version`,
 * `shard` and `discovery` queries. Unknown keys are ignored, so real pack
 * files load unchanged; Outpost adds an optional `watchdog` object (per
 * pack or per query) that osquery ignores.
 *
 * What osquery would skip with a warning (a query without SQL, a bad
 * interval, another platform) is skipped and reported here too; only a file
 * that is not a pack at all fails validation.
 */
import { HandlerError } from "../../core/errors.ts";
import type { WatchdogLimits } from "./watchdog.ts";

/** The osquery release whose pack semantics and table set Outpost follows (pack `version` checks). */
export { OSQUERY_COMPAT_VERSION } from "../../plugins/query/tables/osquery.ts";
export const DEFAULT_INTERVAL_SECONDS = 3600;
export const MAX_INTERVAL_SECONDS = 604_800;
export const MAX_PACK_BYTES = 4 * 1024 * 1024;
export const MAX_QUERIES = 2000;
export const MAX_SQL_BYTES = 64 * 1024;
export const PACK_DIR = "packs/";
const PACK_FILE = /^packs\/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\.(conf|json)$/;

export interface ScheduledQuery {
  pack: string;
  /** The key in the pack's `queries`. */
  name: string;
  /** What results are logged under: `pack_<pack>_<name>`, as osqueryd does. */
  logName: string;
  sql: string;
  interval: number;
  snapshot: boolean;
  removed: boolean;
  /** false: the watchdog may kill the query but never denylists it. */
  denylist: boolean;
  platform?: string;
  version?: string;
  shard?: number;
  description?: string;
  watchdog: Partial<WatchdogLimits>;
}

export interface SkippedQuery {
  pack: string;
  name: string;
  reason: string;
}

export interface Pack {
  name: string;
  file: string;
  platform?: string;
  version?: string;
  shard?: number;
  discovery: string[];
  queries: ScheduledQuery[];
  /** Entries osquery would also ignore, with the reason. */
  invalid: SkippedQuery[];
}

export interface HostFacts {
  /** "linux" on every host the agent ships for. */
  platform: "linux";
  osqueryVersion: string;
  /** 0–100, from the host identifier (osquery's getMachineShard). */
  shard: number;
}

function invalidPack(file: string, reason: string): HandlerError {
  return new HandlerError("HND_QUERY_PACK_INVALID", `${file}: ${reason}`, { file });
}

/** osquery strips whole-line `#` and `//` comments from config JSON. */
function stripComments(text: string): string {
  return text
    .split("\n")
    .map((l) => (/^\s*(#|\/\/)/.test(l) ? "" : l))
    .join("\n");
}

/** osquery's JSON::valueToSize: numbers and numeric strings. */
function toSize(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return Math.trunc(v);
  if (typeof v === "string" && /^\s*-?\d+\s*$/.test(v)) return Number.parseInt(v, 10);
  return undefined;
}

/** osquery's JSON::valueToBool: booleans, "true"/"false", numbers. */
function toBool(v: unknown, fallback: boolean): boolean {
  if (typeof v === "boolean") return v;
  if (typeof v === "number") return v !== 0;
  if (typeof v === "string") {
    const s = v.trim().toLowerCase();
    if (s === "true" || s === "1") return true;
    if (s === "false" || s === "0") return false;
  }
  return fallback;
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

function watchdogOverrides(v: unknown, file: string, where: string): Partial<WatchdogLimits> {
  if (v === undefined) return {};
  if (!v || typeof v !== "object" || Array.isArray(v))
    throw invalidPack(file, `${where}.watchdog must be an object`);
  const out: Partial<WatchdogLimits> = {};
  const bounds: Record<keyof WatchdogLimits, [number, number]> = {
    memoryMb: [1, 16384],
    cpuPercent: [1, 100],
    latencySeconds: [0.1, 3600],
    wallSeconds: [0.1, 86400],
  };
  for (const [k, val] of Object.entries(v)) {
    const b = bounds[k as keyof WatchdogLimits];
    if (!b)
      throw invalidPack(
        file,
        `${where}.watchdog.${k}: unknown limit (memoryMb, cpuPercent, latencySeconds, wallSeconds)`,
      );
    if (typeof val !== "number" || !(val >= b[0] && val <= b[1]))
      throw invalidPack(file, `${where}.watchdog.${k}: must be a number from ${b[0]} to ${b[1]}`);
    out[k as keyof WatchdogLimits] = val;
  }
  return out;
}

/** Parses one pack file. Throws HND_QUERY_PACK_INVALID only when the file is not a pack. */
export function parsePack(name: string, file: string, text: string): Pack {
  if (text.length > MAX_PACK_BYTES) throw invalidPack(file, `larger than ${MAX_PACK_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(stripComments(text));
  } catch (e) {
    throw invalidPack(file, `not valid JSON: ${(e as Error).message}`);
  }
  if (!doc || typeof doc !== "object" || Array.isArray(doc))
    throw invalidPack(file, "a pack must be a JSON object");
  const p = doc as Record<string, unknown>;
  if (p.queries !== undefined && (!p.queries || typeof p.queries !== "object" || Array.isArray(p.queries)))
    throw invalidPack(file, "`queries` must be an object of named queries");
  if (p.discovery !== undefined && !Array.isArray(p.discovery))
    throw invalidPack(file, "`discovery` must be an array of SQL strings");
  const packWatchdog = watchdogOverrides(p.watchdog, file, "pack");
  const pack: Pack = {
    name,
    file,
    discovery: ((p.discovery as unknown[] | undefined) ?? []).filter(
      (d): d is string => typeof d === "string",
    ),
    queries: [],
    invalid: [],
  };
  const packPlatform = str(p.platform);
  const packVersion = str(p.version);
  const packShard = toSize(p.shard);
  if (packPlatform) pack.platform = packPlatform;
  if (packVersion) pack.version = packVersion;
  if (packShard !== undefined) pack.shard = packShard;

  for (const [qname, raw] of Object.entries((p.queries as Record<string, unknown> | undefined) ?? {})) {
    const skip = (reason: string) => pack.invalid.push({ pack: name, name: qname, reason });
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
      skip("not an object");
      continue;
    }
    const q = raw as Record<string, unknown>;
    const sql = str(q.query);
    if (!sql || sql.trim() === "") {
      skip("no query string");
      continue;
    }
    if (Buffer.byteLength(sql) > MAX_SQL_BYTES) {
      skip(`query longer than ${MAX_SQL_BYTES} bytes`);
      continue;
    }
    const interval = q.interval === undefined ? DEFAULT_INTERVAL_SECONDS : toSize(q.interval);
    if (interval === undefined || interval <= 0 || interval > MAX_INTERVAL_SECONDS) {
      skip(`invalid interval ${JSON.stringify(q.interval)} (1–${MAX_INTERVAL_SECONDS} seconds)`);
      continue;
    }
    const shard = toSize(q.shard);
    const sq: ScheduledQuery = {
      pack: name,
      name: qname,
      logName: `pack_${name}_${qname}`,
      sql,
      interval,
      snapshot: toBool(q.snapshot, false),
      removed: toBool(q.removed, true),
      denylist: toBool(q.denylist ?? q.blacklist, true),
      watchdog: { ...packWatchdog, ...watchdogOverrides(q.watchdog, file, `queries.${qname}`) },
    };
    const platform = str(q.platform);
    const version = str(q.version);
    const description = str(q.description);
    if (platform) sq.platform = platform;
    if (version) sq.version = version;
    if (shard !== undefined) sq.shard = shard;
    if (description) sq.description = description;
    pack.queries.push(sq);
  }
  return pack;
}

/** Reads every `packs/<name>.conf|json` of a content payload. */
export function parsePayload(files: readonly string[], read: (path: string) => string): Pack[] {
  const packs: Pack[] = [];
  for (const file of [...files].sort()) {
    if (!file.startsWith(PACK_DIR)) continue;
    const m = PACK_FILE.exec(file);
    if (!m)
      throw invalidPack(
        file,
        "pack files are packs/<name>.conf or packs/<name>.json (name: letters, digits, _ . -)",
      );
    const name = m[1]!;
    if (packs.some((p) => p.name === name)) throw invalidPack(file, `pack ${name} is defined twice`);
    packs.push(parsePack(name, file, read(file)));
  }
  if (packs.length === 0) throw invalidPack("packs/", "the package contains no packs/<name>.conf file");
  const total = packs.reduce((n, p) => n + p.queries.length, 0);
  if (total > MAX_QUERIES) throw invalidPack("packs/", `${total} queries; at most ${MAX_QUERIES}`);
  return packs;
}

/** osquery's checkPlatform for a Linux host. */
export function platformMatches(platform: string | undefined): boolean {
  if (!platform || platform === "null") return true;
  return ["any", "all", "linux", "ubuntu", "centos", "posix"].some((p) => platform.includes(p));
}

/** osquery's versionAtLeast: dotted numeric comparison, missing parts are 0. */
export function versionAtLeast(required: string | undefined, have: string): boolean {
  if (!required || required === "null") return true;
  const a = required.split(".").map((n) => Number.parseInt(n, 10) || 0);
  const b = have.split(".").map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return y > x;
  }
  return true;
}

/** osquery's getMachineShard: first byte of SHA-1(host name), scaled to 0–100. */
export function machineShard(hostIdentifier: string): number {
  const hex = new Bun.CryptoHasher("sha1").update(hostIdentifier).digest("hex");
  return Math.floor((Number.parseInt(hex.slice(0, 2), 16) * 100) / 255);
}

/** Why a pack or query does not run on this host, or undefined when it does. */
function restriction(
  what: { platform?: string; version?: string; shard?: number },
  host: HostFacts,
): string | undefined {
  if (what.shard !== undefined && what.shard > 0 && what.shard < host.shard)
    return `shard ${what.shard} excludes this host (machine shard ${host.shard})`;
  if (!platformMatches(what.platform)) return `platform ${what.platform} (this host is linux)`;
  if (!versionAtLeast(what.version, host.osqueryVersion))
    return `needs osquery ${what.version} (compatible with ${host.osqueryVersion})`;
  return undefined;
}

export interface PackSelection {
  pack: Pack;
  /** Set when the whole pack does not apply to this host. */
  excluded?: string;
  scheduled: ScheduledQuery[];
  skipped: SkippedQuery[];
}

/** Applies platform, version and shard restrictions as osquery's Pack::initialize does. */
export function selectForHost(pack: Pack, host: HostFacts): PackSelection {
  const excluded = restriction(pack, host);
  if (excluded) return { pack, excluded, scheduled: [], skipped: [...pack.invalid] };
  const scheduled: ScheduledQuery[] = [];
  const skipped: SkippedQuery[] = [...pack.invalid];
  for (const q of pack.queries) {
    const why = restriction(q, host);
    if (why) skipped.push({ pack: pack.name, name: q.name, reason: why });
    else scheduled.push(q);
  }
  return { pack, scheduled, skipped };
}
