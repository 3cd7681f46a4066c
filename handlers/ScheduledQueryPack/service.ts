/**
 * The supervisor's half of the scheduled-query pipeline. The query host
 * has no network (and may run in a private namespace), so results cross to
 * the supervisor: this service pulls numbered result lines from the
 * handler's outbox (`pull`), writes them to every sink — the rotating file
 * and, when configured, the HTTP data-lake sink with its own disk queue —
 * and acknowledges them (`ack`) only after every sink has them durably.
 * Crashes anywhere in between repeat a batch; the sinks skip lines they
 * already hold, so nothing is lost or stored twice (docs/queries.md).
 *
 * It also keeps the query host configured (engine, host identifier,
 * watchdog defaults from the agent config) and mirrors per-query
 * telemetry into the supervisor's Prometheus registry for GET /metrics.
 *
 * It pulls when there can be something to deliver, not on a clock: each
 * `pull` answer says how long the outbox will have nothing deliverable
 * (`quietMs`: until held-back lines come due, or until the next scheduled
 * run starts plus the flush interval), and the pump sleeps that long (at
 * least `flushMs` when nothing is pending, never more than `maxIdleMs`).
 * Anything that makes the answer stale wakes it at once: new query content,
 * a restarted query host, new settings. An idle agent with an hourly pack
 * pulls twice a minute instead of thirty times, and the query host's
 * watchdog can back off.
 * The watchdog limits and result format follow the effective
 * configuration (tenant policy may set `query.watchdog.*` and
 * `query.eventFormat`): a change is sent to the host at once and applies
 * to the next query it runs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { attachment } from "../../core/agent/attachments.ts";
import type { AgentConfig } from "../../core/config.ts";
import { type EffectiveSource, followEffective } from "../../core/effective/follow.ts";
import { describeError } from "../../core/errors.ts";
import { log as rootLog } from "../../core/log.ts";
import { metrics as defaultMetrics, type MetricsRegistry } from "../../core/metrics.ts";
import { ticker } from "../../core/ticker.ts";
import { buildSinks } from "../../plugins/sinks/kinds.ts";
import { type DropTarget, reportDrops } from "../../plugins/sinks/registry.ts";
import type { ResultsSink, SinkStats } from "../../plugins/sinks/results.ts";
import { RotatingFileSink } from "../../plugins/sinks/results-file.ts";
import { HttpLakeSink } from "../../plugins/sinks/results-http.ts";
import { scheduledQueryPackManifest } from "./manifest.ts";
import { type Settings, SettingsSchema, settingsHash } from "./settings.ts";

const TYPE = "ScheduledQueryPack";

export interface HandlerCaller {
  call(type: string, method: string, args: unknown): Promise<unknown>;
}

export function settingsFromConfig(q: AgentConfig["query"]): Settings {
  return SettingsSchema.parse({
    engine: q.engine,
    osquerySocket: q.osquerySocket,
    ...(q.hostIdentifier ? { hostIdentifier: q.hostIdentifier } : {}),
    eventFormat: q.eventFormat,
    epoch: q.epoch,
    watchdog: q.watchdog,
  });
}

/** Keys of query.results that are not sink kinds of the registry. */
const OWN_KEYS = ["flushSeconds", "batchLines", "file", "http"] as const;

/**
 * The sinks the config asks for: the rotating file (on by default), the HTTP
 * data lake (when a URL is set) and every registered kind configured under
 * query.results (postgres, clickhouse, syslog — docs/sinks.md), each with
 * its own queue in STATE/query-results/sinks/<kind>.
 */
export function sinksFromConfig(config: AgentConfig, drops: DropTarget = {}): ResultsSink[] {
  const r = config.query.results;
  const onDrop = reportDrops(drops);
  const base = join(config.stateDir, "query-results");
  const sinks: ResultsSink[] = [];
  if (r.file.enabled) {
    sinks.push(
      new RotatingFileSink({
        path: r.file.path ?? join(base, "results.log"),
        maxBytes: r.file.maxBytes,
        maxFiles: r.file.maxFiles,
      }),
    );
  }
  if (r.http.url) {
    const token = r.http.tokenFile ? readFileSync(r.http.tokenFile, "utf8").trim() : r.http.token;
    sinks.push(
      new HttpLakeSink({
        url: r.http.url,
        dir: join(base, "lake-queue"),
        ...(token ? { token } : {}),
        gzip: r.http.gzip,
        timeoutMs: r.http.timeoutSeconds * 1000,
        queueMaxBytes: r.http.queueMaxBytes,
        maxBackoffMs: r.http.maxBackoffSeconds * 1000,
        onDrop,
      }).start(),
    );
  }
  for (const s of buildSinks(r, { queueRoot: join(base, "sinks"), where: "query.results", onDrop }, OWN_KEYS))
    sinks.push(s.start());
  return sinks;
}

interface PullResult {
  settingsHash: string;
  /** False while the host holds its schedule for our first `configure`. */
  configured?: boolean;
  generation: string;
  first: number;
  lines: string[];
  pending: number;
  /** How long (ms) a pull would find nothing deliverable; absent from a host that does not say. */
  quietMs?: number;
  /** Moves when a query run ends in the host: per-query stats may have changed. */
  statsSeq?: string;
}

/** The longest the pump sleeps on a `quietMs`: bounds the delay when a wake-up was missed. */
export const MAX_IDLE_PULL_MS = 30_000;

/**
 * How long, at a clean stop, the result lines still queued for a store that is answering may take to
 * reach it (QueuedSink.close): Fluent Bit's default Grace. A store in backoff gets none.
 */
export const STOP_GRACE_MS = 5000;

/** How long the pump sleeps after a pull that moved `moved` lines and left `pending`. */
export function pullDelayMs(
  r: { moved: number; pending: number; quietMs?: number },
  o: { flushMs: number; maxIdleMs: number; batchLines: number },
): number {
  // A full batch means more is waiting: keep going without a pause.
  if (r.moved >= o.batchLines) return 0;
  // A host that did not say (or was configured just now): the flush interval, as before.
  if (r.quietMs === undefined) return o.flushMs;
  // Lines held back: pull when they come due. None: not before the next run's can be.
  return Math.min(o.maxIdleMs, Math.max(r.pending > 0 ? 0 : o.flushMs, r.quietMs));
}

/** Agent events after which the query host's last `quietMs` may be wrong: new content, a new host. */
export function wakesPump(e: { type: string; [k: string]: unknown }): boolean {
  if (e.contentType === TYPE) return true;
  return e.group === scheduledQueryPackManifest.group && e.type.startsWith("host-");
}

/** What wakes the pump: agent events that make the host's last `quietMs` stale. */
export interface WakeSource {
  subscribe(fn: (e: { type: string; [k: string]: unknown }) => void): () => void;
}

export interface ResultsServiceOptions {
  api: HandlerCaller;
  settings: Settings;
  sinks: ResultsSink[];
  /** Shortest pause between pulls when the outbox had less than a batch. */
  flushMs?: number;
  /** Longest pause between pulls (default MAX_IDLE_PULL_MS). */
  maxIdleMs?: number;
  /** Events that wake the pump (new query content, query host restarts). */
  wakeOn?: WakeSource;
  batchLines?: number;
  /** How often per-query stats are mirrored into /metrics. */
  statsMs?: number;
  metrics?: MetricsRegistry;
}

/** The results service running beside each agent (GET /v1/queries/stats reads it through the agent). */
const servicesByAgent = attachment<ResultsService>();

/** The results service `agent run` started beside `agent`, if any. */
export function resultsServiceOf(agent: object): ResultsService | undefined {
  return servicesByAgent.get(agent);
}

export class ResultsService {
  readonly name = "query-results";
  private readonly log = rootLog.child({ component: "query-results" });
  readonly flushMs: number;
  readonly maxIdleMs: number;
  readonly batchLines: number;
  private unsubscribe?: () => void;
  /** Set by a wake-up that came while a pull was in flight: its `quietMs` is already stale. */
  private woken = false;
  /** The host's `statsSeq` at the last pull, and when its stats were last mirrored. */
  private seenStatsSeq: string | undefined;
  private mirroredStatsSeq: string | undefined;
  private readonly statsMs: number;
  private expectedHash: string;
  private stopped = true;
  private wake?: () => void;
  private loop?: Promise<void>;
  private stopStatsTimer?: () => void;
  private readonly previous = new Map<string, number>();
  private readonly m;
  readonly counters = { pulls: 0, lines: 0, configures: 0, errors: 0 };
  lastError: string | null = null;

  constructor(private readonly opts: ResultsServiceOptions) {
    this.flushMs = opts.flushMs ?? 2000;
    this.maxIdleMs = Math.max(this.flushMs, opts.maxIdleMs ?? MAX_IDLE_PULL_MS);
    this.batchLines = opts.batchLines ?? 5000;
    this.statsMs = opts.statsMs ?? 15_000;
    this.expectedHash = settingsHash(opts.settings);
    const reg = opts.metrics ?? defaultMetrics;
    this.m = {
      runs: reg.counter("outpost_query_runs_total", "Scheduled query runs, by query"),
      rows: reg.counter("outpost_query_rows_total", "Rows returned by scheduled queries, by query"),
      seconds: reg.counter("outpost_query_seconds_total", "Wall time spent in scheduled queries, by query"),
      errors: reg.counter("outpost_query_errors_total", "Scheduled query failures (SQL, engine), by query"),
      kills: reg.counter("outpost_query_watchdog_kills_total", "Queries killed by the watchdog, by query"),
      denylisted: reg.gauge(
        "outpost_query_denylisted",
        "1 while a query is denylisted after a watchdog kill",
      ),
      pending: reg.gauge(
        "outpost_query_outbox_pending_lines",
        "Result lines waiting in the query host's outbox",
      ),
      sinkLines: reg.counter(
        "outpost_query_results_lines_total",
        "Result lines per sink and outcome (accepted, delivered, dropped; retried counts failed attempts)",
      ),
      sinkQueue: reg.gauge(
        "outpost_query_sink_queued_bytes",
        "Bytes waiting in a results sink's delivery queue",
      ),
      sinkQueuedLines: reg.gauge(
        "outpost_query_sink_queued_lines",
        "Result lines waiting in a results sink's delivery queue",
      ),
    };
  }

  start(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    this.unsubscribe = this.opts.wakeOn?.subscribe((e) => {
      if (!wakesPump(e)) return;
      // New queries (or a new host) have stats to show before their first run.
      this.mirroredStatsSeq = undefined;
      this.wakeNow();
    });
    this.loop = this.run();
    this.stopStatsTimer = ticker.every(this.statsMs, () => {
      this.refreshMetricsIfChanged().catch(() => {});
    });
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopStatsTimer?.();
    this.unsubscribe?.();
    this.wake?.();
    await this.loop;
    // A last pull so what the host produced before shutdown is not left waiting a whole restart.
    await this.pumpOnce({ drain: true }).catch(() => {});
    await Promise.all(this.opts.sinks.map((s) => s.close(STOP_GRACE_MS)));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let wait = this.flushMs;
      this.woken = false;
      try {
        wait = pullDelayMs(await this.pumpOnce(), this);
      } catch (e) {
        const d = describeError(e);
        // No content installed yet is the normal idle state, not an error: its arrival wakes us.
        if (d.code === "HND_NOT_LOADED") wait = this.maxIdleMs;
        else {
          this.counters.errors++;
          this.lastError = `${d.code}: ${d.message}`;
          this.log.warn("collecting query results failed", d);
        }
      }
      if (this.woken) wait = 0;
      if (wait > 0 && !this.stopped) {
        await new Promise<void>((resolve) => {
          // On the shared ticker (unref'd: the pump alone must not keep `agent run` alive after
          // shutdown): a pull a second or more away wakes the supervisor with its other jobs.
          const t = ticker.set(resolve, wait);
          this.wake = () => {
            ticker.clear(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
  }

  /**
   * One pull → sinks → ack round; returns the lines moved. Without `drain`
   * the host holds lines back until a batch is full or the oldest line has
   * waited flushMs, so the data lake gets fewer, larger requests.
   */
  async pumpOnce(
    opts: { drain?: boolean } = {},
  ): Promise<{ moved: number; pending: number; quietMs?: number }> {
    const api = this.opts.api;
    const r = (await api.call(TYPE, "pull", {
      max: this.batchLines,
      minLines: opts.drain ? 0 : this.batchLines,
      maxWaitMs: opts.drain ? 0 : this.flushMs,
    })) as PullResult;
    this.counters.pulls++;
    this.seenStatsSeq = r.statsSeq;
    // A host configured just now schedules afresh: its quietMs described the old schedule.
    let quietMs = r.quietMs;
    if (r.settingsHash !== this.expectedHash || r.configured === false) {
      await api.call(TYPE, "configure", this.opts.settings);
      this.counters.configures++;
      quietMs = undefined;
    }
    if (r.lines.length === 0) {
      this.m.pending.set(undefined, r.pending);
      return { moved: 0, pending: r.pending, ...(quietMs !== undefined ? { quietMs } : {}) };
    }
    const batch = { generation: r.generation, first: r.first, lines: r.lines };
    for (const sink of this.opts.sinks) await sink.write(batch);
    await api.call(TYPE, "ack", { generation: r.generation, upTo: r.first + r.lines.length - 1 });
    this.counters.lines += r.lines.length;
    this.m.pending.set(undefined, r.pending - r.lines.length);
    return {
      moved: r.lines.length,
      pending: r.pending - r.lines.length,
      ...(quietMs !== undefined ? { quietMs } : {}),
    };
  }

  /** Ends the pump's current sleep (or makes the pull in flight not sleep): the next pull is now. */
  wakeNow(): void {
    this.woken = true;
    this.wake?.();
  }

  /**
   * New settings (a policy change): sent to the query host now, so the next
   * query runs under them. A host that refuses them keeps its own and this
   * service goes back to the previous ones (the error is rethrown); a host
   * not running yet gets them at its first pull.
   */
  async updateSettings(next: Settings): Promise<void> {
    if (settingsHash(next) === this.expectedHash) return;
    const previous = this.opts.settings;
    this.opts.settings = next;
    this.expectedHash = settingsHash(next);
    try {
      await this.opts.api.call(TYPE, "configure", next);
      this.counters.configures++;
      this.wakeNow();
    } catch (e) {
      if (describeError(e).code === "HND_NOT_LOADED") return;
      this.opts.settings = previous;
      this.expectedHash = settingsHash(previous);
      throw e;
    }
  }

  /** The settings this service keeps the query host on. */
  get settings(): Settings {
    return this.opts.settings;
  }

  sinkStats(): SinkStats[] {
    return this.opts.sinks.map((s) => s.stats());
  }

  /**
   * What the stats timer runs: the host's per-query stats only when a run has ended since they
   * were last mirrored (the pulls report it), so an idle query host is not woken every statsMs;
   * the sinks' counters, which live here, every time. A host that does not report is asked.
   */
  async refreshMetricsIfChanged(): Promise<void> {
    const seq = this.seenStatsSeq;
    if (seq !== undefined && seq === this.mirroredStatsSeq) {
      this.mirrorSinks();
      return;
    }
    await this.refreshMetrics();
    this.mirroredStatsSeq = seq;
  }

  /** Mirrors the handler's per-query counters and the sinks' into the Prometheus registry. */
  async refreshMetrics(stats?: unknown): Promise<unknown> {
    const s = (stats ?? (await this.opts.api.call(TYPE, "stats", {}))) as {
      queries: {
        name: string;
        runs: number;
        rows: number;
        wallMsTotal: number;
        errors: number;
        watchdogKills: number;
        denylistedUntil: string | null;
      }[];
      outbox: { pending: number };
    };
    for (const q of s.queries) {
      const labels = { query: q.name };
      this.bump(this.m.runs, labels, `runs:${q.name}`, q.runs);
      this.bump(this.m.rows, labels, `rows:${q.name}`, q.rows);
      this.bump(this.m.seconds, labels, `sec:${q.name}`, q.wallMsTotal / 1000);
      this.bump(this.m.errors, labels, `err:${q.name}`, q.errors);
      this.bump(this.m.kills, labels, `kill:${q.name}`, q.watchdogKills);
      this.m.denylisted.set(labels, q.denylistedUntil ? 1 : 0);
    }
    this.m.pending.set(undefined, s.outbox.pending);
    this.mirrorSinks();
    return s;
  }

  private mirrorSinks(): void {
    for (const st of this.sinkStats()) {
      const sink = st.name;
      this.bump(this.m.sinkLines, { sink, outcome: "accepted" }, `acc:${sink}`, st.acceptedLines);
      this.bump(this.m.sinkLines, { sink, outcome: "delivered" }, `del:${sink}`, st.deliveredLines);
      this.bump(this.m.sinkLines, { sink, outcome: "dropped" }, `drop:${sink}`, st.droppedLines);
      this.m.sinkQueue.set({ sink }, st.queuedBytes);
      this.bump(this.m.sinkLines, { sink, outcome: "retried" }, `retry:${sink}`, st.retried);
      this.m.sinkQueuedLines.set({ sink }, st.queued);
    }
  }

  /** Counters only go up: a value that fell (the query host restarted) restarts the delta from zero. */
  private bump(
    c: { inc(labels?: Record<string, string>, by?: number): void },
    labels: Record<string, string>,
    key: string,
    value: number,
  ): void {
    const before = this.previous.get(key) ?? 0;
    const delta = value >= before ? value - before : value;
    if (delta > 0) c.inc(labels, delta);
    this.previous.set(key, value);
  }
}

/** What the entry point starts beside `agent run` (see docs/queries.md, "Wiring"). */
export function queryResultsService(ctx: {
  api: HandlerCaller & Pick<DropTarget, "health" | "notify">;
  config: AgentConfig;
  events?: DropTarget["events"] & Partial<WakeSource>;
}): ResultsService {
  return new ResultsService({
    api: ctx.api,
    settings: settingsFromConfig(ctx.config.query),
    sinks: sinksFromConfig(ctx.config, {
      health: ctx.api.health,
      events: ctx.events,
      notify: (a) => ctx.api.notify?.(a),
    }),
    flushMs: ctx.config.query.results.flushSeconds * 1000,
    batchLines: ctx.config.query.results.batchLines,
    ...(ctx.events?.subscribe ? { wakeOn: ctx.events as WakeSource } : {}),
  });
}

/**
 * The results service as a service of `agent run` (the session's service
 * hook): started after the agent, stopped before it, attached to that agent
 * so its routes find it. A sink that cannot be built (unreadable token
 * file…) fails the start, which `agent run` logs without stopping protection.
 */
export function resultsAgentService(ctx: {
  api: HandlerCaller & Pick<DropTarget, "health" | "notify"> & { effective?: EffectiveSource };
  config: AgentConfig;
  events?: DropTarget["events"] & Partial<WakeSource>;
}): {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  settled(): Promise<void>;
} {
  let service: ResultsService | undefined;
  const effective = ctx.api.effective;
  const startService = () => {
    const config = effective ? effective.current() : ctx.config;
    service = queryResultsService({ ...ctx, config }).start();
    servicesByAgent.set(ctx.api, service);
  };
  const follower = effective
    ? followEffective(effective, {
        name: "query",
        keys: QUERY_POLICY_KEYS,
        select: (c) => settingsFromConfig(c.query),
        async apply(next, previous) {
          if (previous === undefined) startService();
          else await service?.updateSettings(next);
        },
        ...(ctx.api.health ? { health: ctx.api.health } : {}),
        emit: (type, fields) => ctx.events?.emit(type, fields),
      })
    : undefined;
  return {
    name: "query-results",
    async start() {
      if (follower) await follower.start();
      else startService();
    },
    async stop() {
      await follower?.stop();
      if (!service) return;
      servicesByAgent.delete(ctx.api, service);
      await service.stop();
    },
    settled: () => follower?.settled() ?? Promise.resolve(),
  };
}

/** What tenant policy may change in the query feature (core/effective/allow-list.ts). */
export const QUERY_POLICY_KEYS = ["query.watchdog.*", "query.eventFormat"];
