/**
 * Runs queries in the worker process under osquery's watchdog rules
 * (osquery core/watcher.cpp): memory is the worker's resident growth since
 * it started (limit 200 MB); CPU is the worker's user+system time per check
 * against `cpuPercent` of all CPUs, and only a limit exceeded for
 * `latencySeconds` in a row (12 s) counts, so a short burst passes and a
 * spin does not; and, beyond osquery, a wall-clock limit per query. A query
 * that breaks a limit is killed with its worker (SIGKILL), the worker is
 * restarted for the next query, and the caller gets HND_QUERY_WATCHDOG with
 * the reason — the scheduler then denylists the query.
 *
 * A worker with nothing to do for `idleRetireMs` (default 60 s) is ended
 * and started again by the next query: it is a whole Bun process (~15 MiB
 * PSS) that scheduled queries minutes apart do not need in between (issue
 * 21, Footprint). A retired worker is not a crash and not a watchdog kill.
 */
import { existsSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import type { Subprocess } from "bun";
import { HandlerError } from "../../core/errors.ts";
import { Channel } from "../../core/host/channel.ts";
import type { ProcView, ProcViewRequest } from "../../core/host/proc-view.ts";
import {
  DEFAULT_ENGINE_SETTINGS,
  type EngineSettings,
  type QueryResult,
} from "../../plugins/query/engine.ts";
import type { Introspection } from "../../plugins/query/tables/context.ts";
import { procViewParts } from "../../plugins/query/tables/proc-source.ts";
import { killWorkerGroup, PARENT_PID_ENV } from "./lifeline.ts";
import { READY_EVENT, WORKER_ENV, WORKER_MAX_MESSAGE_BYTES, type WorkerRequest } from "./worker.ts";

export interface WatchdogLimits {
  /** Resident memory the worker may add while running a query, MiB. */
  memoryMb: number;
  /** Share of all CPUs the worker may use… */
  cpuPercent: number;
  /** …for this many seconds in a row before it is killed. */
  latencySeconds: number;
  /** Longest a single query may run. */
  wallSeconds: number;
}

/** osquery's "normal" watchdog level, plus a wall-clock cap. */
export const DEFAULT_LIMITS: WatchdogLimits = {
  memoryMb: 200,
  cpuPercent: 10,
  latencySeconds: 12,
  wallSeconds: 60,
};

export type KillReason = "memory" | "cpu" | "wall" | "crash";

export interface RunStats {
  wallMs: number;
  /** Worker CPU time (user + system) spent on this query. */
  cpuMs: number;
  /** Largest resident growth of the worker seen during the query, bytes. */
  peakMemoryBytes: number;
}

export interface RunOutcome {
  result: QueryResult;
  stats: RunStats;
}

export interface KillDetails {
  reason: KillReason;
  /** Human-readable limit and measurement, e.g. "200 MB" / "212 MB". */
  limit: string;
  measured: string;
  stats: RunStats;
  [k: string]: unknown;
}

/** A query the watchdog stopped (or whose worker died under it). */
export class WatchdogKill extends HandlerError {
  constructor(
    message: string,
    readonly kill: KillDetails,
  ) {
    super("HND_QUERY_WATCHDOG", message, { details: kill });
  }
}

export interface ProcSample {
  cpuMs: number;
  rssBytes: number;
}

/** utime+stime and VmRSS of a process, or undefined once it is gone. */
export function readProcSample(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(f[11]) + Number(f[12]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    return { cpuMs: ticks * 10, rssBytes: rssKb * 1024 };
  } catch {
    return undefined;
  }
}

/**
 * How to start a worker. From source: bun + worker.ts. In the compiled agent
 * (where modules live in the binary's /$bunfs): the agent's hidden
 * `query-worker` subcommand.
 */
export function defaultWorkerCommand(): string[] {
  const entry = fileURLToPath(new URL("./worker.ts", import.meta.url));
  if (entry.startsWith("/$bunfs/") || !existsSync(entry)) return [process.execPath, "query-worker"];
  return [process.execPath, entry];
}

export interface QueryRunnerOptions {
  settings?: EngineSettings;
  command?: string[];
  /** How often the worker is measured during a query (memory, wall time). */
  checkMs?: number;
  /** Window over which CPU use is compared with the limit (default 1 s). */
  cpuWindowMs?: number;
  /** CPUs the percentage refers to (osquery: all of them). */
  cpuCount?: number;
  /** Worker start-up budget. */
  startTimeoutMs?: number;
  /** A worker idle this long is ended, and started again by the next query (0: never). Default 60 s. */
  idleRetireMs?: number;
  sample?: (pid: number) => ProcSample | undefined;
  onWorkerStart?: (pid: number) => void;
  /** Called when a query has been handed to the worker (tests, diagnostics). */
  onQuerySent?: (pid: number) => void;
  /**
   * The supervisor's process view (privileges.hostView): taken just before a query that reads the
   * per-process tables, because the sandbox hides other processes' /proc links from the worker.
   */
  procView?: (req: ProcViewRequest) => Promise<ProcView>;
}

/**
 * How long the worker may take over a request the watchdog does not time (configure, tables) and,
 * beyond the query's own wall limit, over a query: only a worker that stopped reading gets there.
 */
const REQUEST_TIMEOUT_MS = 10 * 60_000;

interface Worker {
  proc: Subprocess<"pipe", "pipe", "inherit">;
  pid: number;
  baselineRss: number;
  channel: Channel;
  exited: boolean;
  /** Set when the watchdog killed it, so the exit is not reported as a crash. */
  killed?: WatchdogKill;
}

/**
 * One worker, one query at a time (queries queue in call order). Not
 * re-entrant by design: the watchdog's attribution of CPU and memory to a
 * query is only sound when the worker runs nothing else.
 */
export class QueryRunner {
  private settings: EngineSettings;
  private readonly command: string[];
  /** The most recently spawned worker process, from spawn on (stop() kills it even before it is ready). */
  private starting: Subprocess | undefined;
  private readonly checkMs: number;
  private readonly cpuWindowMs: number;
  private readonly cpuCount: number;
  private readonly startTimeoutMs: number;
  private readonly sample: (pid: number) => ProcSample | undefined;
  private worker?: Promise<Worker>;
  private chain: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private queued = 0;
  private retireTimer: ReturnType<typeof setTimeout> | undefined;
  readonly counters = { starts: 0, kills: 0, crashes: 0, queries: 0, procViewFailures: 0, retired: 0 };

  constructor(private readonly opts: QueryRunnerOptions = {}) {
    this.settings = opts.settings ?? DEFAULT_ENGINE_SETTINGS;
    this.command = opts.command ?? defaultWorkerCommand();
    this.checkMs = opts.checkMs ?? 100;
    this.cpuWindowMs = opts.cpuWindowMs ?? 1000;
    this.cpuCount = opts.cpuCount ?? Math.max(1, cpus().length);
    this.startTimeoutMs = opts.startTimeoutMs ?? 15_000;
    this.sample = opts.sample ?? readProcSample;
  }

  get engine(): EngineSettings["engine"] {
    return this.settings.engine;
  }

  /** Queries waiting or running. */
  get depth(): number {
    return this.queued;
  }

  get workerPid(): number | undefined {
    return this.current?.exited === false ? this.current.pid : undefined;
  }

  private current?: Worker;

  /** Switches engine settings; the next query runs on a worker configured with them. */
  configure(settings: EngineSettings): Promise<void> {
    this.settings = settings;
    return this.enqueue(async () => {
      const w = this.current;
      if (w && !w.exited) await this.request(w, { op: "configure", settings });
    });
  }

  /** `introspection` goes to the worker with the query (osquery_schedule rows, osquery_info facts). */
  run(sql: string, limits: WatchdogLimits, introspection?: Introspection): Promise<RunOutcome> {
    return this.enqueue(async () => this.runNow(sql, limits, await this.withProcView(sql, introspection)));
  }

  /** Adds the process view a query needs; without one (not granted, or it failed) tables read /proc directly. */
  private async withProcView(sql: string, introspection?: Introspection): Promise<Introspection | undefined> {
    const parts = this.opts.procView ? procViewParts(sql) : [];
    if (parts.length === 0) return introspection;
    try {
      return { ...introspection, procView: await this.opts.procView!({ parts }) };
    } catch {
      // Degrades to what the sandbox lets the worker read (empty links), as before the view existed.
      this.counters.procViewFailures++;
      return introspection;
    }
  }

  tables(): Promise<string[]> {
    return this.enqueue(
      async () => (await this.request(await this.ensureWorker(), { op: "tables" })) as string[],
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retireTimer);
    // A worker still starting up (not yet `current`) is killed too, or the query queued for it would run on.
    const starting = this.starting;
    if (starting && starting.exitCode === null && starting.signalCode === null) {
      killWorkerGroup(starting);
      await starting.exited;
    }
    const w = this.current;
    if (w && !w.exited) {
      killWorkerGroup(w.proc);
      await w.proc.exited;
    }
    await this.chain.catch(() => {});
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    this.queued++;
    clearTimeout(this.retireTimer);
    this.retireTimer = undefined;
    const run = this.chain.then(fn).finally(() => {
      this.queued--;
      if (this.queued === 0) this.armRetire();
    });
    this.chain = run.catch(() => {});
    return run;
  }

  /** Ends the worker once it has been idle for idleRetireMs; the next query starts a new one. */
  private armRetire(): void {
    const ms = this.opts.idleRetireMs ?? 60_000;
    if (ms <= 0 || this.stopped) return;
    this.retireTimer = setTimeout(() => {
      this.retireTimer = undefined;
      const w = this.current;
      if (this.queued > 0 || this.stopped || !w || w.exited) return;
      this.current = undefined;
      this.worker = undefined;
      this.counters.retired++;
      killWorkerGroup(w.proc);
    }, ms);
    this.retireTimer.unref?.();
  }

  private ensureWorker(): Promise<Worker> {
    if (this.stopped) return Promise.reject(new HandlerError("HND_QUERY_WORKER", "query runner stopped"));
    if (this.current && !this.current.exited && this.worker) return this.worker;
    this.worker = this.spawn();
    this.worker.catch(() => {
      this.worker = undefined;
    });
    return this.worker;
  }

  private spawn(): Promise<Worker> {
    return new Promise<Worker>((resolve, reject) => {
      try {
        this.start(resolve, reject);
      } catch (e) {
        // EACCES here means the host may not execute the worker (exec not granted for this executable).
        reject(
          new HandlerError(
            "HND_QUERY_WORKER",
            `cannot start the query worker ${this.command[0]}: ${(e as Error).message} (the query host needs exec of the agent's own executable; docs/queries.md)`,
            { cause: e },
          ),
        );
      }
    });
  }

  private start(resolve: (w: Worker) => void, reject: (e: Error) => void): void {
    let worker: Worker | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Plain pipes, not Bun's `ipc` (see worker.ts): requests on the worker's stdin, answers on its stdout.
    const proc = Bun.spawn(this.command, {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
      env: { ...process.env, [WORKER_ENV]: "1", [PARENT_PID_ENV]: String(process.pid) },
      // Its own process group, so a kill reaches whatever the worker started (lifeline.ts).
      detached: true,
      onExit: (_p, code, signal) => {
        clearTimeout(timer);
        channel.close(
          worker?.killed ??
            new HandlerError(
              "HND_QUERY_WORKER",
              `query worker exited${worker ? "" : " during start-up"} (code ${code}, ${signal ?? "no signal"})`,
            ),
        );
        if (!worker) {
          reject(
            new HandlerError(
              "HND_QUERY_WORKER",
              `query worker exited during start-up (code ${code}, ${signal ?? "no signal"})`,
            ),
          );
          return;
        }
        worker.exited = true;
      },
    });
    const sink = proc.stdin;
    const channel: Channel = new Channel({
      send: (frame) => {
        sink.write(frame);
        void Promise.resolve(sink.flush()).catch(() => {});
      },
      maxInbound: WORKER_MAX_MESSAGE_BYTES,
      maxOutbound: WORKER_MAX_MESSAGE_BYTES,
      onNotification: (n) => {
        if (worker || n.t !== "evt" || n.type !== READY_EVENT) return;
        clearTimeout(timer);
        worker = {
          proc,
          pid: proc.pid,
          baselineRss: this.sample(proc.pid)?.rssBytes ?? 0,
          channel,
          exited: false,
        };
        this.current = worker;
        this.counters.starts++;
        this.opts.onWorkerStart?.(proc.pid);
        // A fresh worker starts with default settings.
        this.request(worker, { op: "configure", settings: this.settings }).then(
          () => resolve(worker!),
          (e) => reject(e),
        );
      },
      onProtocolError: (p) => {
        // A worker whose stream lost its framing cannot be trusted with the next answer either.
        if (p.fatal) killWorkerGroup(proc);
      },
    });
    void (async () => {
      try {
        for await (const chunk of proc.stdout) channel.feed(chunk);
      } catch {
        // The worker went away mid-read; onExit reports it.
      }
    })();
    this.starting = proc;
    timer = setTimeout(() => {
      killWorkerGroup(proc);
      reject(
        new HandlerError("HND_QUERY_WORKER", `query worker did not start within ${this.startTimeoutMs} ms`),
      );
    }, this.startTimeoutMs);
  }

  private request(w: Worker, req: WorkerRequest, timeoutMs = REQUEST_TIMEOUT_MS): Promise<unknown> {
    if (w.exited)
      return Promise.reject(w.killed ?? new HandlerError("HND_QUERY_WORKER", "query worker is not running"));
    const { op, ...args } = req;
    return w.channel.request(op, args, { timeoutMs });
  }

  private async runNow(
    sql: string,
    limits: WatchdogLimits,
    introspection?: Introspection,
  ): Promise<RunOutcome> {
    const w = await this.ensureWorker();
    this.counters.queries++;
    const started = performance.now();
    const first = this.sample(w.pid);
    const cpu0 = first?.cpuMs ?? 0;
    let lastCpu = cpu0;
    let lastCheck = started;
    let sustainedMs = 0;
    let peak = 0;
    let cpuNow = cpu0;
    const stats = (): RunStats => ({
      wallMs: Math.round((performance.now() - started) * 1000) / 1000,
      cpuMs: Math.max(0, cpuNow - cpu0),
      peakMemoryBytes: peak,
    });
    const kill = (reason: KillReason, limit: string, measured: string) => {
      if (w.exited || w.killed) return;
      const details: KillDetails = { reason, limit, measured, stats: stats() };
      w.killed = new WatchdogKill(
        `query killed by the watchdog: ${reason} limit ${limit} exceeded (${measured})`,
        details,
      );
      this.counters.kills++;
      killWorkerGroup(w.proc);
    };
    const check = () => {
      const s = this.sample(w.pid);
      const now = performance.now();
      if (!s) return;
      cpuNow = s.cpuMs;
      const footprint = Math.max(0, s.rssBytes - w.baselineRss);
      peak = Math.max(peak, footprint);
      if (footprint > limits.memoryMb * 1024 * 1024) {
        kill("memory", `${limits.memoryMb} MB`, `${Math.round(footprint / 1024 / 1024)} MB`);
        return;
      }
      // CPU is judged per window (osquery: its 3 s check interval), not per check: the kernel
      // counts CPU time in 10 ms ticks, which a short window cannot resolve.
      const windowMs = now - lastCheck;
      if (windowMs >= this.cpuWindowMs) {
        const cpuLimitMs = (limits.cpuPercent / 100) * windowMs * this.cpuCount;
        if (s.cpuMs - lastCpu > cpuLimitMs) sustainedMs += windowMs;
        else sustainedMs = 0;
        lastCpu = s.cpuMs;
        lastCheck = now;
      }
      if (sustainedMs >= limits.latencySeconds * 1000) {
        kill(
          "cpu",
          `${limits.cpuPercent}% of ${this.cpuCount} CPU for ${limits.latencySeconds} s`,
          `sustained for ${(sustainedMs / 1000).toFixed(1)} s`,
        );
        return;
      }
      if (now - started > limits.wallSeconds * 1000) {
        kill("wall", `${limits.wallSeconds} s`, `${((now - started) / 1000).toFixed(1)} s`);
      }
    };
    const interval = setInterval(check, this.checkMs);
    const wallTimer = setTimeout(check, limits.wallSeconds * 1000 + 1);
    try {
      const pending = this.request(
        w,
        { op: "query", sql, ...(introspection ? { introspection } : {}) },
        limits.wallSeconds * 1000 + REQUEST_TIMEOUT_MS,
      );
      this.opts.onQuerySent?.(w.pid);
      const result = (await pending) as QueryResult;
      const end = this.sample(w.pid);
      if (end) {
        cpuNow = end.cpuMs;
        peak = Math.max(peak, end.rssBytes - w.baselineRss);
      }
      return { result, stats: stats() };
    } catch (e) {
      if (e instanceof WatchdogKill) throw e;
      if (this.stopped)
        throw new HandlerError("HND_QUERY_WORKER", "query runner stopped while the query ran");
      if (w.exited && !w.killed && (e as HandlerError).code === "HND_QUERY_WORKER") {
        // The worker died under the query (OOM killer, a crash in native code): osquery blames the query.
        this.counters.crashes++;
        throw new WatchdogKill(`query worker died while running the query: ${(e as Error).message}`, {
          reason: "crash",
          limit: "-",
          measured: (e as Error).message,
          stats: stats(),
        });
      }
      throw e;
    } finally {
      clearInterval(interval);
      clearTimeout(wallTimer);
    }
  }
}
