/**
 * Loaded Behavior content: the current engine, the sensor feeding it, the
 * subscription to the ProductRulesFeed library, and what it reports
 * (detections to the event stream, telemetry to status and `rules-stats`
 * events).
 */

import { ranCode } from "../../core/code-release.ts";
import { describeError } from "../../core/errors.ts";
import type { Capabilities } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { productLibraries } from "../_shared/lua/exchange.ts";
import type { LibraryModules, RuleLimits, RuleSource } from "../_shared/lua/format.ts";
import {
  BehaviorEngine,
  DEFAULT_DEADLINE_MS,
  type Detection,
  type EngineOptions,
  type EngineStats,
  type ProcessResult,
} from "./engine.ts";
import type { BehaviorEvent } from "./events.ts";
import { ProcSensor } from "./sensor.ts";

export const BehaviorSettingsSchema = lazySchema(() =>
  z.strictObject({
    /** Rules call product.* functions: hold events until ProductRulesFeed is loaded. */
    requiresProduct: z._default(z.boolean(), false),
    sensor: z.prefault(
      z.strictObject({
        processes: z._default(z.boolean(), true),
        connections: z._default(z.boolean(), true),
        intervalMs: z._default(z.int().check(z.gte(50), z.lte(60_000)), 1000),
      }),
      {},
    ),
    batchSize: z._default(z.int().check(z.gte(1), z.lte(4096)), 256),
    /** Events held while waiting for the library; the oldest are dropped beyond this. */
    pendingMax: z._default(z.int().check(z.gte(0), z.lte(100_000)), 10_000),
    recentDetections: z._default(z.int().check(z.gte(0), z.lte(1000)), 20),
    /** How often per-rule telemetry is published as a `rules-stats` event (also on request). */
    statsIntervalSeconds: z._default(z.int().check(z.gte(5), z.lte(86_400)), 60),
  }),
);
export type BehaviorSettings = z.infer<typeof BehaviorSettingsSchema>;

export interface InjectResult {
  accepted: number;
  delivered: number;
  filtered: number;
  queued: number;
  detections: Detection[];
  disabled: string[];
  /** Events not delivered because the call reached its deadline (a rule too slow; it is charged a fault). */
  skipped: number;
}

const MAX_LOG_LINES_PER_CALL = 100;

export class BehaviorLive {
  engine: BehaviorEngine | undefined;
  private sensor: ProcSensor | undefined;
  private unsubscribe: (() => void) | undefined;
  private statsTimer: ReturnType<typeof setInterval> | undefined;
  private pending: BehaviorEvent[] = [];
  private rebuilding: Promise<void> = Promise.resolve();
  private stopped = false;
  readonly recent: Detection[] = [];
  readonly totals = { events: 0, detections: 0, pendingDropped: 0, logLinesSuppressed: 0, rebuilds: 0 };
  libraryError: string | undefined;
  private lastPublished = "";
  disabledRules = new Set<string>();
  /** Event types the supervisor's sensor bus delivers (feed): the in-host /proc poll skips them. */
  private busTypes = new Set<string>();

  constructor(
    private readonly caps: Capabilities,
    readonly version: number,
    private readonly rules: RuleSource[],
    private readonly limits: RuleLimits,
    readonly settings: BehaviorSettings,
  ) {}

  /** Builds the first engine; throws (so the content is not switched in) if the rules do not load. */
  async start(): Promise<void> {
    const library = productLibraries.current(this.caps.workDir);
    if (library || !this.settings.requiresProduct) {
      this.engine = await BehaviorEngine.create(
        this.rules,
        this.limits,
        library ?? null,
        this.engineOptions(),
      );
    } else {
      // Prove at least that the rules compile; they run once the library arrives.
      await BehaviorEngine.checkSyntax(this.rules, this.limits);
      this.caps.log.warn("Behavior rules wait for ProductRulesFeed", { version: this.version });
    }
    this.unsubscribe = productLibraries.subscribe(this.caps.workDir, (lib) => {
      this.rebuilding = this.rebuilding.then(() => this.rebuild(lib));
    });
    this.startSensor();
    this.statsTimer = setInterval(() => {
      this.publishStats(true);
      ranCode();
    }, this.settings.statsIntervalSeconds * 1000);
    (this.statsTimer as { unref?: () => void }).unref?.();
  }

  /**
   * Half the host's call timeout is what one batch of events may take: a rule
   * slow enough to approach it is faulted, never the reason the supervisor
   * kills the host (which could end in a crash loop rolling back other content).
   */
  private engineOptions(): EngineOptions {
    const timeout = this.caps.callTimeoutMs;
    return {
      batchSize: this.settings.batchSize,
      deadlineMs: timeout ? Math.min(DEFAULT_DEADLINE_MS, timeout / 2) : DEFAULT_DEADLINE_MS,
    };
  }

  /** Swaps in an engine built with a new library; the old one keeps serving if that fails. */
  private async rebuild(library: LibraryModules | undefined): Promise<void> {
    if (this.stopped) return;
    if (!library && this.settings.requiresProduct) {
      this.libraryError = "ProductRulesFeed was unloaded; keeping the previous library";
      return;
    }
    try {
      const next = await BehaviorEngine.create(
        this.rules,
        this.limits,
        library ?? null,
        this.engineOptions(),
      );
      if (this.stopped) {
        next.close();
        return;
      }
      const old = this.engine;
      this.engine = next;
      this.libraryError = undefined;
      this.disabledRules.clear();
      this.totals.rebuilds++;
      old?.close();
      this.caps.log.info("Behavior rules reloaded with product library", {
        library: library?.version ?? null,
      });
      this.startSensor();
      const held = this.pending;
      this.pending = [];
      if (held.length > 0) this.process(held);
    } catch (e) {
      const d = describeError(e);
      this.libraryError = `${d.code}: ${d.message}`;
      this.caps.log.warn("Behavior rules failed to load with the new product library; previous state kept", {
        library: library?.version ?? null,
        ...d,
      });
    }
  }

  private startSensor(): void {
    const s = this.settings.sensor;
    const types = new Set(this.engine?.subscribedTypes() ?? []);
    const processes = s.processes && types.has("process.start") && !this.busTypes.has("process.start");
    const connections =
      s.connections && types.has("network.connect") && !this.busTypes.has("network.connect");
    this.sensor?.stop();
    this.sensor = undefined;
    if (!this.caps.fs || (!processes && !connections)) return;
    this.sensor = new ProcSensor(this.caps.fs, (events) => this.process(events), {
      intervalMs: s.intervalMs,
      processes,
      connections,
    });
    this.sensor.start();
  }

  /**
   * Events from the supervisor's sensor bus. `provides` names the types the
   * kernel sensors deliver, so polling for them here stops; the answer tells
   * the bus which types the rules want (it sends only those).
   */
  feed(events: BehaviorEvent[], provides: string[]): InjectResult & { subscribed: string[] } {
    const next = new Set(provides);
    if (next.size !== this.busTypes.size || [...next].some((t) => !this.busTypes.has(t))) {
      this.busTypes = next;
      if (!this.stopped) this.startSensor();
    }
    const r: InjectResult =
      events.length > 0
        ? this.process(events)
        : { accepted: 0, delivered: 0, filtered: 0, queued: 0, skipped: 0, detections: [], disabled: [] };
    return { ...r, subscribed: this.engine?.subscribedTypes() ?? [] };
  }

  /** Runs events through the rules now (or holds them while the library is missing). */
  process(events: BehaviorEvent[]): InjectResult {
    const result: InjectResult = {
      accepted: events.length,
      delivered: 0,
      filtered: 0,
      queued: 0,
      detections: [],
      disabled: [],
      skipped: 0,
    };
    if (!this.engine) {
      this.pending.push(...events);
      const over = this.pending.length - this.settings.pendingMax;
      if (over > 0) {
        this.pending.splice(0, over);
        this.totals.pendingDropped += over;
      }
      result.queued = events.length;
      return result;
    }
    let r: ProcessResult;
    try {
      r = this.engine.process(events);
    } catch (e) {
      // The trusted runtime failed (not a rule): report it; the next batch gets a fresh chance.
      this.caps.log.warn("Behavior batch failed", describeError(e));
      return result;
    }
    this.totals.events += r.events;
    this.totals.detections += r.detections.length;
    for (const d of r.detections) {
      this.caps.events.emit("detection", {
        contentType: "Behavior",
        version: this.version,
        rule: d.rule,
        title: d.title,
        severity: d.severity,
        fields: d.fields,
        event: d.event,
      });
      this.recent.push(d);
      if (this.recent.length > this.settings.recentDetections) this.recent.shift();
    }
    r.logs.slice(0, MAX_LOG_LINES_PER_CALL).forEach((l) => {
      this.caps.log.info("rule log", { rule: l.rule, message: l.message });
    });
    this.totals.logLinesSuppressed += Math.max(0, r.logs.length - MAX_LOG_LINES_PER_CALL);
    if (r.skipped > 0) {
      this.caps.log.warn("Behavior call reached its deadline; events skipped", { skipped: r.skipped });
    }
    if (r.disabled.length > 0) {
      const stats = this.engine.stats().rules;
      for (const rule of r.disabled) {
        this.disabledRules.add(rule);
        const s = stats.find((x) => x.name === rule);
        this.caps.events.emit("rule-disabled", {
          contentType: "Behavior",
          version: this.version,
          rule,
          faults: s?.faults ?? null,
          lastError: s?.lastError ?? null,
        });
        this.caps.log.warn("rule disabled after repeated faults", { rule, lastError: s?.lastError });
      }
    }
    return {
      ...result,
      delivered: r.delivered,
      filtered: r.filtered,
      detections: r.detections,
      disabled: r.disabled,
      skipped: r.skipped,
    };
  }

  stats(): (EngineStats & { version: number; libraryVersion: number | null }) | null {
    if (!this.engine) return null;
    return { version: this.version, libraryVersion: this.engine.libraryVersion, ...this.engine.stats() };
  }

  /** Publishes per-rule telemetry on the event stream; the supervisor turns it into metrics. */
  publishStats(onlyIfChanged = false): void {
    const s = this.stats();
    if (!s) return;
    const mark = `${s.version}:${s.events}:${s.rules.reduce((n, r) => n + r.calls + r.faults, 0)}`;
    if (onlyIfChanged && mark === this.lastPublished) return;
    this.lastPublished = mark;
    this.caps.events.emit("rules-stats", {
      contentType: "Behavior",
      version: this.version,
      rules: s.rules.map((r) => [
        r.name,
        r.calls,
        r.timeMs,
        r.maxMs,
        r.faults,
        r.disabled ? 1 : 0,
        r.detections,
      ]),
      events: s.events,
      filtered: s.filtered,
      dropped: s.dropped,
      heapBytes: s.heapBytes,
    });
  }

  status(): Record<string, unknown> {
    const e = this.engine;
    return {
      rules: this.rules.length,
      disabledRules: [...this.disabledRules],
      libraryVersion: e?.libraryVersion ?? null,
      ...(e ? {} : { waitingFor: "ProductRulesFeed", pendingEvents: this.pending.length }),
      ...(this.libraryError ? { libraryError: this.libraryError } : {}),
      subscribedTypes: e?.subscribedTypes() ?? [],
      sensor: this.sensor?.running ? { ...this.sensor.counters } : "off",
      ...(this.busTypes.size ? { sensorBus: [...this.busTypes] } : {}),
      events: this.totals.events,
      detections: this.totals.detections,
      recentDetections: this.recent
        .slice(-5)
        .map((d) => ({ rule: d.rule, title: d.title, severity: d.severity })),
      heapBytes: e?.heapBytes() ?? 0,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.sensor?.stop();
    if (this.statsTimer) clearInterval(this.statsTimer);
    await this.rebuilding;
    this.engine?.close();
    this.engine = undefined;
  }
}
