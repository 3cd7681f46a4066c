/**
 * What the query host keeps across content versions: settings, the result
 * outbox, differential state, the denylist, per-query statistics and the
 * two query workers (scheduled, ad hoc). During a content switch the new
 * pack is loaded beside the live one, so both share this state through a
 * per-directory registry; only the newest loaded schedule runs, and if the
 * new content is discarded the previous schedule resumes.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { atomicWriteJson } from "../../core/fsutil.ts";
import { Outbox } from "../_shared/outbox/outbox.ts";
import { Denylist } from "./denylist.ts";
import { DiffStore } from "./results.ts";
import {
  engineSettings,
  loadSettings,
  type Settings,
  type SettingsInput,
  SettingsSchema,
  saveSettings,
  settingsHash,
} from "./settings.ts";
import { QueryRunner, type QueryRunnerOptions } from "./watchdog.ts";

export interface QueryStats {
  name: string;
  pack: string;
  query: string;
  interval: number;
  splayedInterval: number;
  runs: number;
  rows: number;
  lastRows: number;
  linesLogged: number;
  wallMsTotal: number;
  lastWallMs: number;
  cpuMsTotal: number;
  peakMemoryBytes: number;
  lastRunAt: string | null;
  nextRunAt: string | null;
  errors: number;
  lastError: { code: string; message: string; at: string } | null;
  watchdogKills: number;
  lastKill: { reason: string; limit: string; measured: string; at: string } | null;
  skippedDenylisted: number;
}

export interface HostEnv {
  emit: (type: string, fields?: Record<string, unknown>) => void;
  log: {
    info(msg: string, f?: Record<string, unknown>): void;
    warn(msg: string, f?: Record<string, unknown>): void;
  };
  now?: () => number;
  random?: () => number;
  /** Worker command, check interval… (tests). */
  runner?: Omit<QueryRunnerOptions, "settings">;
  /** Schedules stay paused until `configure` was called once (settings kept from an earlier run count). */
  awaitSettings?: boolean;
  /** The supervisor's process view (privileges.hostView), handed to the workers' queries that need it. */
  procView?: QueryRunnerOptions["procView"];
}

/** Something that runs a schedule and can be paused while newer content is live. */
export interface Activatable {
  pause(): void;
  resume(): void;
}

interface Executing {
  name: string;
  sql: string;
  startedAt: string;
  /** The query's `denylist` option. */
  denylist: boolean;
}

const hosts = new Map<string, QueryHost>();

export class QueryHost {
  settings: Settings;
  readonly outbox: Outbox;
  readonly diff: DiffStore;
  readonly denylist: Denylist;
  readonly stats = new Map<string, QueryStats>();
  readonly scheduled: QueryRunner;
  readonly adhoc: QueryRunner;
  readonly now: () => number;
  readonly random: () => number;
  env: HostEnv;
  private refs = 0;
  /** False until the supervisor sent settings once: the active schedule waits (HostEnv.awaitSettings). */
  configured: boolean;
  private readonly active: Activatable[] = [];
  private splay: Record<string, { interval: number; splayed: number }> = {};
  private splayDirty = false;
  private tablesCache?: { engine: string; tables: Promise<Set<string>> };

  private constructor(
    readonly dir: string,
    env: HostEnv,
  ) {
    this.env = env;
    this.now = env.now ?? Date.now;
    this.random = env.random ?? Math.random;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.settings = loadSettings(this.settingsPath);
    this.configured = !env.awaitSettings || existsSync(this.settingsPath);
    this.outbox = new Outbox(join(dir, "outbox"), { maxBytes: this.settings.outboxMaxBytes, now: this.now });
    this.diff = new DiffStore(join(dir, "state"));
    this.denylist = new Denylist(join(dir, "denylist.json"), this.now);
    try {
      this.splay = JSON.parse(readFileSync(join(dir, "splay.json"), "utf8"));
    } catch {
      this.splay = {};
    }
    const runnerOpts = {
      ...env.runner,
      settings: engineSettings(this.settings),
      ...(env.procView ? { procView: env.procView } : {}),
    };
    this.scheduled = new QueryRunner(runnerOpts);
    this.adhoc = new QueryRunner(runnerOpts);
    // Created once per host process: a marker left now means the previous process died mid-query.
    const interrupted = this.takeInterrupted();
    if (interrupted) this.denyInterrupted(interrupted);
  }

  private denyInterrupted(e: Executing): void {
    if (e.denylist === false) {
      this.env.log.warn("query host stopped during a query that may not be denylisted", { query: e.name });
      return;
    }
    const reason = `the query host stopped while this query ran (started ${e.startedAt})`;
    const entry = this.denylist.add(e.name, reason, this.settings.watchdog.denylistSeconds * 1000);
    this.env.log.warn("query denylisted after a host crash", {
      query: e.name,
      until: new Date(entry.until).toISOString(),
    });
    this.env.emit("query-denylisted", {
      query: e.name,
      reason: "crash",
      detail: reason,
      denylistedUntil: new Date(entry.until).toISOString(),
    });
  }

  /** The host state for `dir`, shared by every loaded version of the content. */
  static acquire(dir: string, env: HostEnv): QueryHost {
    let h = hosts.get(dir);
    if (!h) {
      h = new QueryHost(dir, env);
      hosts.set(dir, h);
    } else h.env = env;
    h.refs++;
    return h;
  }

  async release(): Promise<void> {
    this.refs--;
    if (this.refs > 0) return;
    hosts.delete(this.dir);
    await Promise.all([this.scheduled.stop(), this.adhoc.stop()]);
  }

  private get settingsPath(): string {
    return join(this.dir, "settings.json");
  }

  get settingsHash(): string {
    return settingsHash(this.settings);
  }

  /** Applies new settings (validated); returns whether anything changed. */
  async configure(input: SettingsInput): Promise<{ settingsHash: string; changed: boolean }> {
    const next = SettingsSchema.parse(input);
    const changed = settingsHash(next) !== this.settingsHash;
    if (changed) {
      const engineChanged =
        JSON.stringify(engineSettings(next)) !== JSON.stringify(engineSettings(this.settings));
      this.settings = next;
      saveSettings(this.settingsPath, next);
      if (engineChanged) {
        this.tablesCache = undefined;
        await Promise.all([
          this.scheduled.configure(engineSettings(next)),
          this.adhoc.configure(engineSettings(next)),
        ]);
      }
      this.env.log.info("query settings applied", { engine: next.engine, hash: this.settingsHash });
    }
    if (!this.configured) {
      this.configured = true;
      this.active.at(-1)?.resume();
    }
    return { settingsHash: this.settingsHash, changed };
  }

  /** Tables the configured engine answers (osqueryd is asked once per engine change). */
  engineTables(): Promise<Set<string>> {
    const engine = JSON.stringify(engineSettings(this.settings));
    if (!this.tablesCache || this.tablesCache.engine !== engine) {
      const tables = this.adhoc.tables().then((t) => new Set(t));
      this.tablesCache = { engine, tables };
      tables.catch(() => {
        if (this.tablesCache?.tables === tables) this.tablesCache = undefined;
      });
    }
    return this.tablesCache.tables;
  }

  /** osquery's splayed interval (±10 %), kept per query while its interval stays the same. */
  splayedInterval(name: string, interval: number): number {
    const known = this.splay[name];
    if (known && known.interval === interval) return known.splayed;
    const delta = Math.floor(interval * 0.1);
    const min = Math.max(1, interval - delta);
    const max = interval + delta;
    const splayed = min + Math.floor(this.random() * (max - min + 1));
    this.splay[name] = { interval, splayed };
    this.splayDirty = true;
    return splayed;
  }

  /** Persists new splays once per schedule build rather than once per query. */
  saveSplay(): void {
    if (!this.splayDirty) return;
    atomicWriteJson(join(this.dir, "splay.json"), this.splay, 0o600);
    this.splayDirty = false;
  }

  statsFor(name: string, init: () => QueryStats): QueryStats {
    let s = this.stats.get(name);
    if (!s) {
      s = init();
      this.stats.set(name, s);
    }
    return s;
  }

  private get executingPath(): string {
    return join(this.dir, "executing.json");
  }

  /** Recorded before a scheduled query runs; left behind only if the host died during it. */
  markExecuting(name: string, sql: string, denylist: boolean): void {
    const e: Executing = { name, sql, startedAt: new Date(this.now()).toISOString(), denylist };
    // It must outlive the host process, not a power cut: no fsync (this runs before every query).
    const tmp = `${this.executingPath}.tmp`;
    writeFileSync(tmp, JSON.stringify(e), { mode: 0o600 });
    renameSync(tmp, this.executingPath);
  }

  clearExecuting(): void {
    rmSync(this.executingPath, { force: true });
  }

  /** The query that was running when the previous host process died, if any (and forgets it). */
  private takeInterrupted(): Executing | undefined {
    if (!existsSync(this.executingPath)) return undefined;
    let e: Executing | undefined;
    try {
      e = JSON.parse(readFileSync(this.executingPath, "utf8")) as Executing;
    } catch {
      e = undefined;
    }
    this.clearExecuting();
    return e && typeof e.name === "string" ? e : undefined;
  }

  /** Makes `s` the running schedule; the previous one pauses until `s` is deactivated. */
  activate(s: Activatable): void {
    this.active.at(-1)?.pause();
    this.active.push(s);
    if (this.configured) s.resume();
  }

  deactivate(s: Activatable): void {
    const i = this.active.indexOf(s);
    if (i < 0) return;
    const wasTop = i === this.active.length - 1;
    this.active.splice(i, 1);
    s.pause();
    if (wasTop && this.configured) this.active.at(-1)?.resume();
  }
}
