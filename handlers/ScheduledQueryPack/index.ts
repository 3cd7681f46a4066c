/**
 * The ScheduledQueryPack content handler (group `query`): osquery packs in,
 * osquery-format results out. The vendor ships `packs/<name>.conf` files
 * (real osquery packs load unchanged); the handler schedules them with
 * osqueryd's timing, runs each query in a watched worker process on the
 * configured engine (embedded SQLite tables or a real osqueryd), turns rows
 * into osquery differential or snapshot log lines and keeps them in a
 * durable outbox until the supervisor pulls and acknowledges them — this
 * host has no network, the supervisor's sinks deliver (docs/queries.md).
 *
 * Privileges (group `query`): root, for osquery parity (other users'
 * /proc/PID/fd, crontabs, any path for `file`/`hash`), but read-only
 * everywhere; exec, only to start its query worker (the agent's own
 * executable); no network.
 */
import { join } from "node:path";
import { describeError, HandlerError } from "../../core/errors.ts";
import { type Capabilities, type ContentView, defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { planQuery } from "../../plugins/query/embedded.ts";
import { QueryHost } from "./host.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };
import {
  MAX_SQL_BYTES,
  machineShard,
  OSQUERY_COMPAT_VERSION,
  type Pack,
  type PackSelection,
  parsePayload,
  selectForHost,
} from "./pack.ts";
import { type RunReport, Scheduler, statsSeq, type Timers } from "./scheduler.ts";
import { hostIdentifierOf, SettingsSchema, watchdogLimits } from "./settings.ts";
import { embeddedUnsupported, osquerydUnsupported } from "./unsupported.ts";
import { type QueryRunnerOptions, WatchdogKill } from "./watchdog.ts";

export const TYPE = "ScheduledQueryPack";
/** Rows an ad-hoc query returns at most; the rest is cut and flagged. */
export const MAX_ADHOC_ROWS = 50_000;
/** Ad-hoc queries waiting for the worker before callers are told to come back later. */
export const MAX_ADHOC_QUEUE = 8;
/** Wall-time cap for ad-hoc queries, below the supervisor's default IPC call timeout (30 s). */
export const ADHOC_MAX_WALL_SECONDS = 25;

export interface HandlerOptions {
  /** Query worker overrides (tests: faster watchdog checks). */
  runner?: Omit<QueryRunnerOptions, "settings">;
  timers?: Timers;
  now?: () => number;
  random?: () => number;
  /**
   * Hold the schedule until the supervisor's results service has sent its settings once (the
   * production handler does): results run before that would carry default settings, e.g. the
   * host name instead of the configured `hostIdentifier`. Tests driving the handler alone leave it off.
   */
  awaitSettings?: boolean;
}

export interface Loaded {
  host: QueryHost;
  packs: Pack[];
  selections: PackSelection[];
  scheduler: Scheduler;
  version: number;
  loadedAt: string;
  /** Shard and engine the selection was made for; a change rebuilds the schedule. */
  builtFor: string;
  adhoc: { runs: number; errors: number; kills: number };
  timers?: Timers;
}

/** What makes a pack unacceptable as content: statements we refuse and SQL that cannot parse. */
function fatalSqlProblem(sql: string): string | undefined {
  try {
    planQuery(sql);
    return undefined;
  } catch (e) {
    const d = describeError(e);
    if (d.code === "HND_QUERY_REFUSED") return d.message;
    if (
      d.code === "HND_QUERY_SQL" &&
      /syntax error|incomplete input|unrecognized token|unterminated/i.test(d.message)
    )
      return d.message;
    // Unknown tables and osquery-only functions are reported at load, not fatal.
    return undefined;
  }
}

function readPacks(view: ContentView): Pack[] {
  return parsePayload(view.files, (p) => view.readText(p));
}

function build(
  loaded: Omit<Loaded, "scheduler" | "selections" | "builtFor">,
): Pick<Loaded, "scheduler" | "selections" | "builtFor"> {
  const { host } = loaded;
  const ident = hostIdentifierOf(host.settings);
  const facts = {
    platform: "linux" as const,
    osqueryVersion: OSQUERY_COMPAT_VERSION,
    shard: machineShard(ident),
  };
  const selections = loaded.packs.map((p) => selectForHost(p, facts));
  const scheduler = new Scheduler(host, selections, loaded.timers);
  if (host.settings.engine === "embedded") scheduler.setUnsupported(embeddedUnsupported);
  // osqueryd's registry, asked once per engine change; while osqueryd is away, runs report the errors.
  else
    host
      .engineTables()
      .then((tables) => scheduler.setUnsupported(osquerydUnsupported(tables)))
      .catch(() => {});
  return {
    scheduler,
    selections,
    builtFor: `${facts.shard}:${host.settings.engine}:${host.settings.osquerySocket}`,
  };
}

function parseArgs<T>(schema: z.ZodMiniType<T>, method: string, args: unknown): T {
  const parsed = schema.safeParse(args ?? {});
  if (!parsed.success) {
    throw new HandlerError("HND_QUERY_BAD_ARGS", `${TYPE} ${method}: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** quietMs is capped: JSON has no Infinity, and a schedule an hour away says enough. */
const QUIET_CAP_MS = 3_600_000;

/**
 * How long a pull will find no line to deliver, in ms (the supervisor's pump sleeps on it): lines
 * held back come due when the oldest has waited `maxWaitMs`; with none pending, lines can only
 * come from the next run, and are due `maxWaitMs` after it starts at the earliest.
 */
function quietMsOf(l: Loaded, maxWaitMs: number): number {
  const ob = l.host.outbox;
  if (ob.pending > 0) return Math.min(QUIET_CAP_MS, Math.max(0, maxWaitMs - ob.oldestPendingAgeMs()));
  return untilNextRunLines(l, maxWaitMs);
}

function untilNextRunLines(l: Loaded, maxWaitMs: number): number {
  return Math.min(QUIET_CAP_MS, l.scheduler.msUntilNextRun() + maxWaitMs);
}

export const QueryArgsSchema = lazySchema(() =>
  z.strictObject({ sql: z.string().check(z.minLength(1), z.maxLength(MAX_SQL_BYTES)) }),
);
export const PullArgsSchema = lazySchema(() =>
  z.strictObject({
    max: z._default(z.int().check(z.gte(1), z.lte(100_000)), 5000),
    maxBytes: z._default(z.int().check(z.gte(1024), z.lte(64 * 1024 * 1024)), 8 * 1024 * 1024),
    /** Return nothing unless this many lines wait… */
    minLines: z._default(z.int().check(z.gte(0)), 0),
    /** …or the oldest has waited this long. */
    maxWaitMs: z._default(z.int().check(z.gte(0)), 0),
  }),
);
export const AckArgsSchema = lazySchema(() =>
  z.strictObject({ generation: z.string().check(z.minLength(1)), upTo: z.int().check(z.gte(0)) }),
);
export const RunArgsSchema = lazySchema(() =>
  z.strictObject({ name: z.string().check(z.minLength(1)), force: z._default(z.boolean(), false) }),
);
export const NameArgsSchema = lazySchema(() => z.strictObject({ name: z.string().check(z.minLength(1)) }));

export const METHODS = ["query", "stats", "packs", "pull", "ack", "configure", "run", "undeny"] as const;

export function packReport(l: Loaded) {
  return l.selections.map((sel) => ({
    name: sel.pack.name,
    file: sel.pack.file,
    excluded: sel.excluded ?? null,
    discovery: sel.pack.discovery,
    active: sel.excluded ? false : (l.scheduler.discoveryState(sel.pack.name)?.active ?? null),
    inactiveReason: l.scheduler.discoveryState(sel.pack.name)?.reason ?? null,
    scheduled: l.scheduler.queries
      .filter((e) => e.q.pack === sel.pack.name)
      .map((e) => ({
        name: e.q.logName,
        interval: e.q.interval,
        splayedInterval: e.splayed,
        snapshot: e.q.snapshot,
        nextRunAt: new Date(e.nextDue).toISOString(),
        ...(e.unsupported ? { unsupported: e.unsupported } : {}),
      })),
    skipped: sel.skipped.map((s) => ({ name: `pack_${s.pack}_${s.name}`, reason: s.reason })),
  }));
}

function statsOf(l: Loaded) {
  const host = l.host;
  const queries = [...host.stats.values()]
    .filter((s) => l.scheduler.queries.some((e) => e.q.logName === s.name))
    .map((s) => {
      const denied = host.denylist.get(s.name);
      return {
        ...s,
        avgWallMs: s.runs ? Math.round((s.wallMsTotal / s.runs) * 1000) / 1000 : 0,
        denylistedUntil: denied ? new Date(denied.until).toISOString() : null,
        denylistReason: denied?.reason ?? null,
      };
    });
  const sum = (f: (q: (typeof queries)[number]) => number) => queries.reduce((n, q) => n + f(q), 0);
  return {
    generatedAt: new Date(host.now()).toISOString(),
    version: l.version,
    engine: host.settings.engine,
    hostIdentifier: hostIdentifierOf(host.settings),
    settingsHash: host.settingsHash,
    worker: { pid: host.scheduled.workerPid ?? null, ...host.scheduled.counters },
    adhoc: { ...l.adhoc, worker: { pid: host.adhoc.workerPid ?? null, ...host.adhoc.counters } },
    totals: {
      queries: queries.length,
      runs: sum((q) => q.runs),
      rows: sum((q) => q.rows),
      wallMs: Math.round(sum((q) => q.wallMsTotal)),
      errors: sum((q) => q.errors),
      watchdogKills: sum((q) => q.watchdogKills),
      denylisted: queries.filter((q) => q.denylistedUntil).length,
    },
    queries,
    denylist: host.denylist
      .list()
      .map((e) => ({ ...e, until: new Date(e.until).toISOString(), at: new Date(e.at).toISOString() })),
    outbox: host.outbox.stats(),
  };
}

async function adhocQuery(l: Loaded, sql: string) {
  const host = l.host;
  if (host.adhoc.depth >= MAX_ADHOC_QUEUE)
    throw new HandlerError(
      "HND_QUERY_BUSY",
      `${MAX_ADHOC_QUEUE} ad-hoc queries are already waiting; try again shortly`,
    );
  l.adhoc.runs++;
  try {
    const limits = watchdogLimits(host.settings);
    // An ad-hoc caller waits on an IPC call (hosts.callTimeoutSeconds, 30 s by default): stop first.
    const out = await host.adhoc.run(sql, {
      ...limits,
      wallSeconds: Math.min(limits.wallSeconds, ADHOC_MAX_WALL_SECONDS),
    });
    const truncated = out.result.rows.length > MAX_ADHOC_ROWS;
    return {
      engine: host.settings.engine,
      columns: out.result.columns,
      rows: truncated ? out.result.rows.slice(0, MAX_ADHOC_ROWS) : out.result.rows,
      rowCount: out.result.rows.length,
      truncated,
      warnings: out.result.warnings,
      stats: out.stats,
    };
  } catch (e) {
    if (e instanceof WatchdogKill) {
      l.adhoc.kills++;
      host.env.emit("query-watchdog-kill", {
        query: "(ad hoc)",
        reason: e.kill.reason,
        limit: e.kill.limit,
        measured: e.kill.measured,
        wallMs: e.kill.stats.wallMs,
        denylistedUntil: null,
      });
    } else l.adhoc.errors++;
    throw e;
  }
}

async function rebuildIfNeeded(l: Loaded): Promise<void> {
  const ident = hostIdentifierOf(l.host.settings);
  const key = `${machineShard(ident)}:${l.host.settings.engine}:${l.host.settings.osquerySocket}`;
  if (key === l.builtFor) return;
  const old = l.scheduler;
  Object.assign(l, build(l));
  l.host.activate(l.scheduler);
  l.host.deactivate(old);
  await old.stop();
}

export function createScheduledQueryPackHandler(opts: HandlerOptions = {}) {
  return defineParsedHandler<Loaded>({
    manifest: parsedManifest(),

    validate(view) {
      for (const pack of readPacks(view)) {
        const check = (what: string, sql: string) => {
          const problem = fatalSqlProblem(sql);
          if (problem)
            throw new HandlerError("HND_QUERY_PACK_INVALID", `${pack.file}: ${what}: ${problem}`, {
              file: pack.file,
            });
        };
        pack.discovery.forEach((sql, i) => {
          check(`discovery[${i}]`, sql);
        });
        for (const q of pack.queries) check(`query ${q.name}`, q.sql);
      }
    },

    load(view, caps: Capabilities) {
      const packs = readPacks(view);
      const host = QueryHost.acquire(join(caps.workDir, TYPE), {
        emit: (type, fields) => caps.events.emit(type, fields),
        log: caps.log,
        ...(opts.now ? { now: opts.now } : {}),
        ...(opts.random ? { random: opts.random } : {}),
        ...(opts.runner ? { runner: opts.runner } : {}),
        ...(opts.awaitSettings ? { awaitSettings: true } : {}),
        ...(caps.hostView ? { procView: caps.hostView.procView } : {}),
      });
      const base = {
        host,
        packs,
        version: view.version,
        loadedAt: new Date(host.now()).toISOString(),
        adhoc: { runs: 0, errors: 0, kills: 0 },
        ...(opts.timers ? { timers: opts.timers } : {}),
      };
      const loaded: Loaded = { ...base, ...build(base) };
      host.activate(loaded.scheduler);
      const skipped = loaded.selections.reduce((n, s) => n + s.skipped.length, 0);
      caps.log.info("query packs loaded", {
        version: view.version,
        packs: packs.length,
        scheduled: loaded.scheduler.queries.length,
        skipped,
        unsupported: loaded.scheduler.queries.filter((e) => e.unsupported).length,
        engine: host.settings.engine,
      });
      return loaded;
    },

    async unload(l) {
      l.host.deactivate(l.scheduler);
      await l.scheduler.stop();
      await l.host.release();
    },

    status(l) {
      const host = l.host;
      const q = l.scheduler.queries;
      const denylisted = host.denylist.list();
      return {
        engine: host.settings.engine,
        packs: l.packs.length,
        scheduled: q.filter((e) => !e.unsupported).length,
        unsupported: q.filter((e) => e.unsupported).length,
        skipped: l.selections.reduce((n, s) => n + s.skipped.length, 0),
        inactivePacks: l.selections
          .filter((s) => s.excluded || l.scheduler.discoveryState(s.pack.name)?.active === false)
          .map((s) => s.pack.name),
        denylisted: denylisted
          .slice(0, 10)
          .map((e) => ({ name: e.name, until: new Date(e.until).toISOString(), reason: e.reason })),
        // A worker retired while idle and started again is not a restart (watchdog.ts, idleRetireMs).
        workerRestarts: Math.max(0, host.scheduled.counters.starts - 1 - host.scheduled.counters.retired),
        watchdogKills: host.scheduled.counters.kills + host.adhoc.counters.kills,
        outboxPending: host.outbox.pending,
        outboxDropped: host.outbox.stats().dropped,
        settingsHash: host.settingsHash,
      };
    },

    async call(l, method, args) {
      switch (method) {
        case "query": {
          const { sql } = parseArgs(QueryArgsSchema, method, args);
          return adhocQuery(l, sql);
        }
        case "stats":
          return statsOf(l);
        case "packs":
          return { version: l.version, engine: l.host.settings.engine, packs: packReport(l) };
        case "pull": {
          const a = parseArgs(PullArgsSchema, method, args);
          const ob = l.host.outbox;
          const pending = ob.pending;
          const base = {
            settingsHash: l.host.settingsHash,
            configured: l.host.configured,
            generation: ob.generation,
            // Moves when a run ends: the supervisor's cue to mirror the per-query stats again.
            statsSeq: statsSeq(),
          };
          if (pending === 0 || (pending < a.minLines && ob.oldestPendingAgeMs() < a.maxWaitMs))
            return {
              ...base,
              first: ob.stats().acked + 1,
              lines: [],
              pending,
              quietMs: quietMsOf(l, a.maxWaitMs),
            };
          const out = ob.pull(a.max, a.maxBytes);
          return {
            ...out,
            settingsHash: l.host.settingsHash,
            configured: l.host.configured,
            statsSeq: base.statsSeq,
            // Lines left behind (batch or byte cap) are deliverable now; otherwise the next run decides.
            quietMs: out.lines.length < pending ? 0 : untilNextRunLines(l, a.maxWaitMs),
          };
        }
        case "ack": {
          const a = parseArgs(AckArgsSchema, method, args);
          const ok = l.host.outbox.ack(a.generation, a.upTo);
          return { ok, ...l.host.outbox.stats() };
        }
        case "configure": {
          const parsed = SettingsSchema.safeParse(args ?? {});
          if (!parsed.success)
            throw new HandlerError(
              "HND_QUERY_BAD_ARGS",
              `${TYPE} configure: ${z.prettifyError(parsed.error)}`,
            );
          const r = await l.host.configure(parsed.data);
          await rebuildIfNeeded(l);
          return r;
        }
        case "run": {
          const a = parseArgs(RunArgsSchema, method, args);
          const report: Promise<RunReport> | undefined = l.scheduler.runNow(a.name, { force: a.force });
          if (!report)
            throw new HandlerError("HND_QUERY_UNKNOWN_QUERY", `${TYPE}: no scheduled query named ${a.name}`);
          return report;
        }
        case "undeny": {
          const { name } = parseArgs(NameArgsSchema, method, args);
          return { name, removed: l.host.denylist.remove(name) };
        }
        default:
          throw new HandlerError("HND_UNKNOWN_METHOD", `${TYPE} has no method ${JSON.stringify(method)}`, {
            details: { methods: [...METHODS] },
          });
      }
    },
  });
}

export const scheduledQueryPackHandler = createScheduledQueryPackHandler({ awaitSettings: true });
export default scheduledQueryPackHandler;
