/**
 * The supervisor's telemetry service. Off unless `telemetry.enabled`; then,
 * every `interval` of the installed TELEMSUP document (± jitter), it builds
 * one report (report.ts) from what the agent already measures and delivers
 * it durably:
 *
 *   report → Outbox (fsync, numbered: generation + seq) → HttpLakeSink queue
 *   (gzip body on disk) → ack → sender: PUT/POST with Idempotency-Key
 *   `<generation>:<seq>-<seq>`, retried with exponential backoff and jitter,
 *   queue capped (oldest dropped, counted).
 *
 * Both stores are the query pipeline's (handlers/ScheduledQueryPack/outbox.ts,
 * plugins/sinks/results-http.ts): a receiver outage loses nothing, and a
 * retry after an ambiguous failure carries the same key, so the receiver
 * stores the report once.
 *
 * The target comes from content but is pinned by config (TS8): a document
 * naming a server outside `telemetry.allowedServers` is refused — health
 * reason, event, admin alert — and the previous good target stays in use.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadAgentId } from "../../core/agent/heartbeat.ts";
import type { Agent } from "../../core/agent/runtime.ts";
import type { AgentConfig } from "../../core/config.ts";
import { describeError } from "../../core/errors.ts";
import { atomicWriteJson } from "../../core/fsutil.ts";
import type { HealthChange } from "../../core/health/reasons.ts";
import { log as rootLog } from "../../core/log.ts";
import { metrics } from "../../core/metrics.ts";
import { parseAllowedServer } from "../../core/telemetry/config.ts";
import { ticker } from "../../core/ticker.ts";
import { VERSION } from "../../core/version.ts";
import { HttpLakeSink } from "../../plugins/sinks/results-http.ts";
import { Outbox } from "../_shared/outbox/outbox.ts";
import { resolveTarget, type TelemsupDocument, type UploadTarget } from "./document.ts";
import { buildReport, type HealthChangeRecord, type TelemetryReport } from "./report.ts";

export type TelemetryAgent = Pick<Agent, "status" | "call" | "health" | "events" | "notify">;

export interface TelemetryServiceOptions {
  agent: TelemetryAgent;
  config: AgentConfig;
  now?: () => Date;
  random?: () => number;
  fetchImpl?: typeof fetch;
  metricsText?: () => string;
  /** Sender backoff floor (tests shorten it). */
  minBackoffMs?: number;
}

interface Persisted {
  lastReportAt: string | null;
  /** The last target that passed TS8, used while newer content is refused. */
  target: UploadTarget | null;
}

const RETRY_BUILD_MS = 60_000;
const DELIVERY_CHECK_MS = 30_000;

const reportsTotal = metrics.counter(
  "outpost_telemetry_reports_total",
  "Telemetry reports built, by outcome",
);

export class TelemetryService {
  readonly name = "telemetry";
  private readonly log = rootLog.child({ component: "telemetry" });
  private readonly dir: string;
  private readonly now: () => Date;
  private readonly random: () => number;
  private readonly history: HealthChangeRecord[] = [];
  private outbox?: Outbox;
  private sink?: HttpLakeSink;
  private state: Persisted = { lastReportAt: null, target: null };
  private timer?: ReturnType<typeof setTimeout>;
  private stopHealthTimer?: () => void;
  private unsubs: (() => void)[] = [];
  private running = false;
  private failedLast = false;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly startedAt: Date;
  lastError: string | null = null;
  refused: string | null = null;

  constructor(private readonly opts: TelemetryServiceOptions) {
    this.dir = join(opts.config.stateDir, "telemetry");
    this.now = opts.now ?? (() => new Date());
    this.random = opts.random ?? Math.random;
    this.startedAt = this.now();
  }

  get enabled(): boolean {
    return this.opts.config.telemetry.enabled;
  }

  start(): void {
    if (!this.enabled) {
      this.log.info("telemetry disabled (telemetry.enabled is false)");
      return;
    }
    this.running = true;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const statePath = join(this.dir, "state.json");
    if (existsSync(statePath)) {
      try {
        this.state = { ...this.state, ...(JSON.parse(readFileSync(statePath, "utf8")) as Persisted) };
      } catch (e) {
        this.log.warn("telemetry state unreadable; starting afresh", {
          file: statePath,
          ...describeError(e),
        });
      }
    }
    this.outbox = new Outbox(join(this.dir, "outbox"), {
      maxBytes: this.opts.config.telemetry.queueMaxBytes,
    });
    this.unsubs.push(this.opts.agent.health.onChange((c) => this.recordHealth(c)));
    this.unsubs.push(
      this.opts.agent.events.subscribe((e) => {
        if (e.type === "content-installed" || e.type === "content-rolled-back") {
          if ((e as { contentType?: unknown }).contentType === "TELEMSUP") void this.refresh();
        }
      }),
    );
    void this.refresh();
    this.stopHealthTimer = ticker.every(DELIVERY_CHECK_MS, () => this.checkDelivery());
  }

  /**
   * Reports waiting behind failed attempts show in `agent status` as an
   * information-level reason (telemetry never affects protection), cleared
   * once the queue has drained. Runs every DELIVERY_CHECK_MS.
   */
  checkDelivery(): void {
    const q = this.sink?.stats();
    const health = this.opts.agent.health;
    if (q && q.queuedLines > 0 && q.attempts > 0) {
      health.raise(
        "telemetry",
        "info",
        "TELEM_UPLOAD_FAILING",
        `telemetry: ${q.queuedLines} report(s) waiting for ${new URL(this.state.target?.url ?? "http://unknown").host}; last error: ${q.lastError ?? "?"}`,
      );
    } else health.clear("telemetry", "TELEM_UPLOAD_FAILING");
  }

  private recordHealth(c: HealthChange): void {
    this.history.push({
      at: this.now().toISOString(),
      change: c.kind,
      source: c.reason.source,
      level: c.reason.level,
      code: c.reason.code,
    });
    if (this.history.length > 1000) this.history.splice(0, this.history.length - 1000);
  }

  /** Reads the installed TELEMSUP document, applies TS8, and (re)schedules. */
  refresh(): Promise<UploadTarget | null> {
    const run = this.chain.then(() => this.refreshNow());
    this.chain = run.catch(() => {});
    return run;
  }

  private async refreshNow(): Promise<UploadTarget | null> {
    let doc: TelemsupDocument | undefined;
    try {
      doc = ((await this.opts.agent.call("TELEMSUP", "settings", {})) as { doc: TelemsupDocument }).doc;
    } catch (e) {
      const d = describeError(e);
      if (d.code !== "HND_NOT_LOADED" && d.code !== "HND_UNKNOWN_TYPE")
        this.log.warn("TELEMSUP unavailable", d);
    }
    if (doc) {
      const allowed = this.opts.config.telemetry.allowedServers.map(parseAllowedServer);
      const r = resolveTarget(doc, allowed, this.agentId());
      if (r.ok) {
        this.refused = null;
        this.opts.agent.health.clear("telemetry", "TELEM_SERVER_NOT_ALLOWED");
        this.state.target = r.target;
        this.persist();
      } else {
        this.refuse(r.reason);
      }
    }
    this.ensureSink();
    this.schedule();
    return this.state.target;
  }

  private refuse(reason: string): void {
    const first = this.refused !== reason;
    this.refused = reason;
    const message = `TELEMSUP refused: ${reason}; ${this.state.target ? `still sending to ${new URL(this.state.target.url).host}` : "not sending"}`;
    this.opts.agent.health.raise("telemetry", "amber", "TELEM_SERVER_NOT_ALLOWED", message);
    if (!first) return;
    this.log.warn("telemetry settings refused", { code: "TELEM_SERVER_NOT_ALLOWED", reason });
    this.opts.agent.events.emit("telemetry-refused", { code: "TELEM_SERVER_NOT_ALLOWED", reason });
    this.opts.agent.notify({
      kind: "telemetry-refused",
      type: "TELEMSUP",
      file: "telemsup.json",
      code: "TELEM_SERVER_NOT_ALLOWED",
      reason,
    });
  }

  private token(): string | undefined {
    const t = this.opts.config.telemetry;
    const f = this.opts.config.fleet;
    const file = t.tokenFile ?? f.tokenFile;
    if (file) return readFileSync(file, "utf8").trim();
    return f.token;
  }

  private ensureSink(): void {
    const target = this.state.target;
    if (!target) return;
    if (this.sink) {
      this.sink.retarget(target);
      return;
    }
    const t = this.opts.config.telemetry;
    // Like heartbeats: the tenant token travels in clear text only to loopback.
    const u = new URL(target.url);
    const cleartext = u.protocol === "http:" && !["localhost", "127.0.0.1", "[::1]"].includes(u.hostname);
    const token = cleartext ? undefined : this.token();
    if (cleartext)
      this.log.warn("telemetry over plain http to a non-loopback host: sent without the token", {
        host: u.host,
      });
    this.sink = new HttpLakeSink({
      url: target.url,
      method: target.method,
      headers: target.headers,
      contentType: "application/json",
      dir: join(this.dir, "queue"),
      ...(token ? { token } : {}),
      gzip: true,
      timeoutMs: t.timeoutSeconds * 1000,
      queueMaxBytes: t.queueMaxBytes,
      maxBackoffMs: t.maxBackoffSeconds * 1000,
      ...(this.opts.minBackoffMs !== undefined ? { minBackoffMs: this.opts.minBackoffMs } : {}),
      ...(this.opts.fetchImpl ? { fetchImpl: this.opts.fetchImpl } : {}),
      random: this.random,
    }).start();
    // Reports left in the outbox by a crash between append and queue go out now.
    void this.drainOutbox();
  }

  /** When the next report is due: last report (or start) + interval ± jitter. */
  nextDueMs(): number | null {
    const target = this.state.target;
    if (!target) return null;
    const j = this.opts.config.telemetry.jitter;
    const base = Date.parse(this.state.lastReportAt ?? this.startedAt.toISOString());
    return base + target.intervalSeconds * 1000 * (1 + j * (2 * this.random() - 1));
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const due = this.nextDueMs();
    if (!this.running || due === null) return;
    // After a failed build (full disk…) the due time is still in the past: wait a minute, not a spin.
    const floor = this.failedLast ? RETRY_BUILD_MS : 0;
    const wait = Math.min(Math.max(floor, due - this.now().getTime()), 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reportNow()
        .then(() => {
          this.failedLast = false;
        })
        .catch((e) => {
          this.failedLast = true;
          this.lastError = describeError(e).message;
          this.log.warn("telemetry report failed", describeError(e));
        })
        .finally(() => this.schedule());
    }, wait);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private agentId(): string {
    return loadAgentId(this.opts.config.stateDir);
  }

  /** Builds one report and queues it durably; resolves once it is on disk (not yet delivered). */
  reportNow(): Promise<TelemetryReport> {
    const run = this.chain.then(() => this.buildAndQueue());
    this.chain = run.catch(() => {});
    return run;
  }

  private async buildAndQueue(): Promise<TelemetryReport> {
    const outbox = this.outbox;
    if (!this.running || !outbox) throw new Error("telemetry is disabled");
    const end = this.now();
    const start = this.state.lastReportAt ? new Date(this.state.lastReportAt) : this.startedAt;
    const status = this.opts.agent.status();
    const optional = (type: string) =>
      this.opts.agent.call(type, "stats", {}).then(
        (x) => x,
        () => undefined,
      );
    const [ruleStats, queryStats] = await Promise.all([optional("Behavior"), optional("ScheduledQueryPack")]);
    const report = buildReport({
      reportId: crypto.randomUUID(),
      agentId: this.agentId(),
      agentVersion: VERSION,
      updateGroup: this.opts.config.update.group,
      periodStart: start,
      periodEnd: end,
      status: {
        health: status.health,
        content: status.content.map((c) => ({
          type: c.type,
          version: c.version,
          handlerState: c.handlerState,
        })),
        hosts: (status.hosts ?? []).map((h) => ({
          group: h.group,
          state: h.state,
          restarts: h.restarts,
          crashesInWindow: h.crashesInWindow,
          rssBytes: h.usage?.rssBytes ?? null,
        })),
      },
      ruleStats,
      queryStats,
      metricsText: (this.opts.metricsText ?? (() => metrics.render()))(),
      healthHistory: this.history.filter((h) => Date.parse(h.at) >= start.getTime()),
    });
    outbox.append([JSON.stringify(report)]);
    this.state.lastReportAt = end.toISOString();
    this.persist();
    reportsTotal.inc({ outcome: "queued" });
    this.opts.agent.events.emit("telemetry-queued", { reportId: report.reportId });
    await this.drainOutbox();
    return report;
  }

  /** Outbox → sink queue → ack (repeatable: the sink skips what it already holds). */
  private async drainOutbox(): Promise<void> {
    const outbox = this.outbox;
    const sink = this.sink;
    if (!outbox || !sink) return;
    for (;;) {
      const p = outbox.pull(100);
      if (p.lines.length === 0) return;
      await sink.write({ generation: p.generation, first: p.first, lines: p.lines });
      outbox.ack(p.generation, p.first + p.lines.length - 1);
    }
  }

  private persist(): void {
    atomicWriteJson(join(this.dir, "state.json"), this.state, 0o600);
  }

  /** Waits until every queued report was delivered (or timeoutMs passed). */
  flush(timeoutMs = 60_000): Promise<boolean> {
    return this.sink ? this.sink.flush(timeoutMs) : Promise.resolve(true);
  }

  retryNow(): void {
    this.sink?.retryNow();
  }

  stats() {
    return {
      enabled: this.enabled,
      target: this.state.target
        ? {
            url: this.state.target.url,
            method: this.state.target.method,
            intervalSeconds: this.state.target.intervalSeconds,
          }
        : null,
      refused: this.refused,
      lastReportAt: this.state.lastReportAt,
      nextReportAt: (() => {
        const d = this.nextDueMs();
        return d === null || !this.running ? null : new Date(d).toISOString();
      })(),
      outbox: this.outbox?.stats() ?? null,
      queue: this.sink?.stats() ?? null,
      lastError: this.lastError,
    };
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.stopHealthTimer?.();
    for (const u of this.unsubs) u();
    this.unsubs = [];
    await this.chain.catch(() => {});
    await this.sink?.close();
    this.sink = undefined;
  }
}
