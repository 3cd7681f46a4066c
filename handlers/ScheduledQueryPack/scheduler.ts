/**
 * The schedule, with osqueryd's timing (osquery dispatcher/scheduler.cpp):
 * a query runs at the unix seconds that are multiples of its splayed
 * interval (interval ± 10 %, chosen once per query and kept), so a fleet
 * spreads out while each host stays regular. Queries run one at a time on
 * the scheduled worker; a query that comes due while another runs goes
 * next, and missed runs are not replayed. Packs with discovery queries run
 * only while every discovery query returns a row (re-checked every
 * packRefreshSeconds). Denylisted queries are skipped until their time is
 * up.
 */

import { byCodeUnit } from "../../core/compare.ts";
import { describeError } from "../../core/errors.ts";
import type { QueryHost, QueryStats } from "./host.ts";
import { scheduleRows } from "./introspection.ts";
import type { PackSelection, ScheduledQuery } from "./pack.ts";
import { processResults } from "./results.ts";
import { hostIdentifierOf, watchdogLimits } from "./settings.ts";
import { WatchdogKill } from "./watchdog.ts";

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // The schedule alone must not keep a host process alive.
    (t as { unref?: () => void }).unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Longest single timer: the schedule re-checks at least this often (clock jumps, suspend). */
const MAX_SLEEP_MS = 60_000;

interface Entry {
  q: ScheduledQuery;
  splayed: number;
  nextDue: number;
  /** Set when the configured engine does not have a table (or function) the query uses. */
  unsupported?: string;
  /** HND_QUERY_UNKNOWN_TABLE or HND_QUERY_UNKNOWN_FUNCTION. */
  unsupportedCode?: string;
}

interface DiscoveryState {
  checkedAt: number;
  active: boolean;
  reason?: string;
}

export interface RunReport {
  name: string;
  status: "ok" | "error" | "killed" | "denylisted" | "inactive" | "unsupported";
  rows?: number;
  added?: number;
  removed?: number;
  lines?: number;
  wallMs?: number;
  error?: { code: string; message: string };
}

/** Runs ended (or skipped) in this process, by any schedule. */
let runsEnded = 0;
/** Tells this process's count from a restarted host's. */
const PROCESS_EPOCH = Math.random().toString(36).slice(2, 10);

/**
 * Moves whenever a run ends in this process: per-query stats change only then, so the
 * supervisor mirrors them again only when it moved (service.ts, `statsSeq`).
 */
export function statsSeq(): string {
  return `${PROCESS_EPOCH}:${runsEnded}`;
}

export class Scheduler {
  private readonly entries: Entry[] = [];
  private readonly discovery = new Map<string, DiscoveryState>();
  private timer?: unknown;
  private paused = true;
  private stopped = false;
  private running?: Promise<unknown>;
  /** Runs (scheduled or `runNow`) that have started and not finished. */
  private executing = 0;

  constructor(
    private readonly host: QueryHost,
    private readonly selections: PackSelection[],
    private readonly timers: Timers = realTimers,
  ) {
    const now = host.now();
    for (const sel of selections) {
      for (const q of sel.scheduled) {
        const splayed = host.splayedInterval(q.logName, q.interval);
        this.entries.push({ q, splayed, nextDue: nextAligned(now, splayed) });
        this.statsOf(q, splayed);
      }
    }
    host.saveSplay();
  }

  /** Marks queries using tables or functions the engine lacks (reported in status, not run). */
  setUnsupported(check: (q: ScheduledQuery) => { code: string; message: string } | undefined): void {
    for (const e of this.entries) {
      const u = check(e.q);
      e.unsupported = u?.message;
      e.unsupportedCode = u?.code;
    }
  }

  get queries(): readonly { q: ScheduledQuery; splayed: number; nextDue: number; unsupported?: string }[] {
    return this.entries;
  }

  discoveryState(pack: string): DiscoveryState | undefined {
    return this.discovery.get(pack);
  }

  pause(): void {
    this.paused = true;
    this.disarm();
  }

  resume(): void {
    if (this.stopped) return;
    this.paused = false;
    this.arm();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.pause();
    await this.running?.catch(() => {});
  }

  private disarm(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.disarm();
    if (this.paused || this.stopped) return;
    const due = this.entries.filter((e) => !e.unsupported).map((e) => e.nextDue);
    if (due.length === 0) return;
    const wait = Math.max(0, Math.min(Math.min(...due) - this.host.now(), MAX_SLEEP_MS));
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      this.running = this.runDue().finally(() => {
        this.running = undefined;
        this.arm();
      });
    }, wait);
  }

  /**
   * How long from now until a scheduled run can start, in ms: 0 while one is running, Infinity
   * while none can (paused until configured, stopped, nothing supported). Lines reach the outbox
   * only from runs, so the supervisor's results pump sleeps this long instead of asking every
   * flush interval (service.ts).
   */
  msUntilNextRun(): number {
    if (this.executing > 0 || this.running) return 0;
    if (this.paused || this.stopped) return Number.POSITIVE_INFINITY;
    let next = Number.POSITIVE_INFINITY;
    for (const e of this.entries) if (!e.unsupported && e.nextDue < next) next = e.nextDue;
    return Math.max(0, next - this.host.now());
  }

  /** Runs every query that is due now, in due order; returns how many ran. */
  async runDue(): Promise<RunReport[]> {
    const reports: RunReport[] = [];
    if (this.stopped) return reports;
    const due = this.entries
      .filter((e) => e.nextDue <= this.host.now())
      .sort((a, b) => a.nextDue - b.nextDue || byCodeUnit(a.q.logName, b.q.logName));
    for (const e of due) {
      if (this.stopped || this.paused) break;
      // The next slot is computed from now, so a late run does not cause a burst of catch-up runs.
      e.nextDue = nextAligned(this.host.now(), e.splayed);
      reports.push(await this.execute(e));
      this.statsOf(e.q, e.splayed).nextRunAt = new Date(e.nextDue).toISOString();
    }
    return reports;
  }

  /** Runs one scheduled query now (the `run` API); the denylist still applies unless forced. */
  runNow(logName: string, opts: { force?: boolean } = {}): Promise<RunReport> | undefined {
    const e = this.entries.find((x) => x.q.logName === logName || `${x.q.pack}/${x.q.name}` === logName);
    return e ? this.execute(e, opts.force) : undefined;
  }

  private statsOf(q: ScheduledQuery, splayed: number): QueryStats {
    return this.host.statsFor(q.logName, () => ({
      name: q.logName,
      pack: q.pack,
      query: q.name,
      interval: q.interval,
      splayedInterval: splayed,
      runs: 0,
      rows: 0,
      lastRows: 0,
      linesLogged: 0,
      wallMsTotal: 0,
      lastWallMs: 0,
      cpuMsTotal: 0,
      peakMemoryBytes: 0,
      lastRunAt: null,
      nextRunAt: null,
      errors: 0,
      lastError: null,
      watchdogKills: 0,
      lastKill: null,
      skippedDenylisted: 0,
    }));
  }

  private async packActive(sel: PackSelection): Promise<DiscoveryState> {
    const name = sel.pack.name;
    const now = this.host.now();
    const cached = this.discovery.get(name);
    if (sel.pack.discovery.length === 0) return { checkedAt: now, active: true };
    if (cached && now - cached.checkedAt < this.host.settings.packRefreshSeconds * 1000) return cached;
    let state: DiscoveryState = { checkedAt: now, active: true };
    for (const sql of sel.pack.discovery) {
      try {
        const out = await this.host.scheduled.run(sql, watchdogLimits(this.host.settings));
        if (out.result.rows.length === 0) {
          state = { checkedAt: now, active: false, reason: `discovery query returned no rows: ${sql}` };
          break;
        }
      } catch (e) {
        state = {
          checkedAt: now,
          active: false,
          reason: `discovery query failed (${describeError(e).message}): ${sql}`,
        };
        break;
      }
    }
    this.discovery.set(name, state);
    return state;
  }

  private async execute(e: Entry, force = false): Promise<RunReport> {
    this.executing++;
    try {
      return await this.executeInner(e, force);
    } finally {
      this.executing--;
      runsEnded++;
    }
  }

  private async executeInner(e: Entry, force: boolean): Promise<RunReport> {
    const { q } = e;
    const host = this.host;
    const stats = this.statsOf(q, e.splayed);
    if (e.unsupported)
      return {
        name: q.logName,
        status: "unsupported",
        error: { code: e.unsupportedCode ?? "HND_QUERY_UNKNOWN_TABLE", message: e.unsupported },
      };
    const denied = host.denylist.get(q.logName);
    if (denied && !force) {
      stats.skippedDenylisted++;
      return { name: q.logName, status: "denylisted" };
    }
    const sel = this.selections.find((s) => s.pack.name === q.pack);
    if (sel) {
      const d = await this.packActive(sel);
      if (!d.active)
        return {
          name: q.logName,
          status: "inactive",
          error: { code: "HND_QUERY_DISCOVERY", message: d.reason ?? "" },
        };
    }
    const settings = host.settings;
    const at = new Date(host.now());
    host.markExecuting(q.logName, q.sql, q.denylist);
    let outcome: Awaited<ReturnType<typeof host.scheduled.run>>;
    try {
      outcome = await host.scheduled.run(
        q.sql,
        watchdogLimits(settings, q.watchdog),
        /osquery_schedule/i.test(q.sql) ? { schedule: scheduleRows(host) } : undefined,
      );
    } catch (err) {
      host.clearExecuting();
      return this.failed(e, stats, err, at);
    }
    host.clearExecuting();
    const diff = processResults(host.diff, q, outcome.result.rows, {
      hostIdentifier: hostIdentifierOf(settings),
      at,
      epoch: settings.epoch,
      eventFormat: settings.eventFormat,
    });
    // Lines first, then the state they were computed against: a crash in between repeats, never loses.
    host.outbox.append(diff.lines);
    if (diff.next) host.diff.save(diff.next);
    stats.runs++;
    stats.rows += outcome.result.rows.length;
    stats.lastRows = outcome.result.rows.length;
    stats.linesLogged += diff.lines.length;
    stats.wallMsTotal += outcome.stats.wallMs;
    stats.lastWallMs = outcome.stats.wallMs;
    stats.cpuMsTotal += outcome.stats.cpuMs;
    stats.peakMemoryBytes = Math.max(stats.peakMemoryBytes, outcome.stats.peakMemoryBytes);
    stats.lastRunAt = at.toISOString();
    return {
      name: q.logName,
      status: "ok",
      rows: outcome.result.rows.length,
      added: diff.added,
      removed: diff.removed,
      lines: diff.lines.length,
      wallMs: outcome.stats.wallMs,
    };
  }

  private failed(e: Entry, stats: QueryStats, err: unknown, at: Date): RunReport {
    const { q } = e;
    const host = this.host;
    const d = describeError(err);
    stats.lastRunAt = at.toISOString();
    if (err instanceof WatchdogKill) {
      const k = err.kill;
      stats.watchdogKills++;
      stats.wallMsTotal += k.stats.wallMs;
      stats.cpuMsTotal += k.stats.cpuMs;
      stats.peakMemoryBytes = Math.max(stats.peakMemoryBytes, k.stats.peakMemoryBytes);
      // The kill happened wallMs after the run started (`at`), on the scheduler's own clock.
      const killedAt = new Date(at.getTime() + Math.round(k.stats.wallMs)).toISOString();
      stats.lastKill = { reason: k.reason, limit: k.limit, measured: k.measured, at: killedAt };
      let until: string | null = null;
      if (q.denylist) {
        const entry = host.denylist.add(
          q.logName,
          `watchdog: ${k.reason} limit ${k.limit} exceeded (${k.measured})`,
          host.settings.watchdog.denylistSeconds * 1000,
        );
        until = new Date(entry.until).toISOString();
      }
      host.env.log.warn("watchdog killed a scheduled query", {
        query: q.logName,
        reason: k.reason,
        measured: k.measured,
        denylistedUntil: until,
      });
      host.env.emit("query-watchdog-kill", {
        query: q.logName,
        reason: k.reason,
        limit: k.limit,
        measured: k.measured,
        wallMs: k.stats.wallMs,
        denylistedUntil: until,
      });
      return { name: q.logName, status: "killed", error: d, wallMs: k.stats.wallMs };
    }
    // Stopping the host aborts the running query; that is not the query's fault.
    if (d.code === "HND_QUERY_WORKER" && /stopped/.test(d.message))
      return { name: q.logName, status: "error", error: d };
    stats.errors++;
    stats.lastError = { code: d.code, message: d.message, at: at.toISOString() };
    // The engine lacks a table (osqueryd without that table): report it and stop retrying until a rebuild.
    if (d.code === "HND_QUERY_UNKNOWN_TABLE" || d.code === "HND_QUERY_UNKNOWN_FUNCTION")
      [e.unsupported, e.unsupportedCode] = [d.message, d.code];
    return { name: q.logName, status: "error", error: d };
  }
}

/** The next unix time after `now` that is a multiple of `intervalSeconds` (osquery's `i % interval == 0`). */
export function nextAligned(nowMs: number, intervalSeconds: number): number {
  const nowSec = Math.floor(nowMs / 1000);
  return (Math.floor(nowSec / intervalSeconds) + 1) * intervalSeconds * 1000;
}
