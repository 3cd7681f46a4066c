/**
 * One Behavior rules engine: a sandboxed Lua state holding the
 * ProductRulesFeed library (loaded first) and the rules, plus the
 * sensor-side aggregation that decides which subscriptions receive an
 * event. `process` is synchronous: events in, detections out.
 */
import { HandlerError } from "../../core/errors.ts";
import type { LibraryModules, RuleLimits, RuleSource } from "../_shared/lua/format.ts";
import { LuaSandbox, type LuaValue, luaRef, type SandboxOptions } from "../_shared/lua/sandbox.ts";
import type { AggregationCounters } from "./aggregate.ts";
import { BatchEncoder } from "./codec.ts";
import type { BehaviorEvent } from "./events.ts";
import runtimeSource from "./runtime.lua" with { type: "text" };
import { type ConditionCounters, SubscriptionGate } from "./subscription.ts";

export type { LibraryModules };

export interface Detection {
  rule: string;
  title: string;
  severity: string;
  /** Extra fields the rule attached. */
  fields: Record<string, string | number | boolean>;
  event: BehaviorEvent;
}

export interface RuleLog {
  rule: string;
  message: string;
}

export interface ProcessResult {
  events: number;
  delivered: number;
  /** Events no subscription wanted, or that aggregation discarded for every subscription. */
  filtered: number;
  detections: Detection[];
  logs: RuleLog[];
  /** Rules disabled by this call (repeated faults). */
  disabled: string[];
  /** Events not delivered because the call reached its deadline (see EngineOptions.deadlineMs). */
  skipped: number;
}

export interface RuleStats {
  name: string;
  calls: number;
  timeMs: number;
  maxMs: number;
  faults: number;
  limitFaults: number;
  disabled: boolean;
  lastError: string | null;
  detections: number;
  subscriptions: number;
  loadMs: number;
}

export interface EngineStats {
  rules: RuleStats[];
  library: RuleStats[];
  heapBytes: number;
  events: number;
  batches: number;
  batchMs: number;
  maxBatchMs: number;
  filtered: number;
  dropped: number;
  /** Events not delivered because a call reached its deadline. */
  skipped: number;
  aggregation: (AggregationCounters & { rule: string; type: string })[];
  /** Per subscription with conditions: events tested and events that passed (the rest never reached Lua). */
  conditions: (ConditionCounters & { rule: string; type: string })[];
}

interface Sub {
  id: number;
  rule: string;
  type: string;
  gate: SubscriptionGate | null;
}

export interface EngineOptions {
  sandbox?: Partial<SandboxOptions>;
  batchSize?: number;
  /** Deliver every event to every subscription, ignoring aggregation options (benchmarks, rule tests). */
  ignoreAggregation?: boolean;
  /** Deliver regardless of the subscriptions' conditions (`agent rules test` compares with and without). */
  ignoreConditions?: boolean;
  /**
   * Longest one `process` call may run, ms: kept below the host's call
   * timeout, so a slow rule is faulted instead of the host being killed.
   */
  deadlineMs?: number;
}

/** Without a host call timeout to stay under (e.g. offline rule tests): 10 s. */
export const DEFAULT_DEADLINE_MS = 10_000;

export class BehaviorEngine {
  private readonly byType = new Map<string, Sub[]>();
  private readonly encoder = new BatchEncoder();
  private readonly batchSize: number;
  private readonly totals = {
    events: 0,
    batches: 0,
    batchMs: 0,
    maxBatchMs: 0,
    filtered: 0,
    dropped: 0,
    skipped: 0,
  };
  private readonly deadlineMs: number;
  private readonly subs: Sub[] = [];
  /** Event types with at least one gated subscription (the others go to every subscription, unlisted). */
  private readonly gated = new Set<string>();

  private constructor(
    private readonly sandbox: LuaSandbox,
    private readonly rt: number,
    readonly ruleCount: number,
    readonly libraryVersion: number | null,
    readonly loadMs: number,
    opts: EngineOptions,
  ) {
    this.batchSize = opts.batchSize ?? 256;
    this.deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
    for (const raw of sandbox.call(rt, "subscriptions")[0] as LuaValue[]) {
      const s = raw as { id: number; rule: string; type: string; opts: LuaValue };
      const gate = SubscriptionGate.fromOptions(s.rule, s.type, s.opts, opts);
      const sub = { id: s.id, rule: s.rule, type: s.type, gate };
      this.subs.push(sub);
      const list = this.byType.get(s.type) ?? [];
      list.push(sub);
      this.byType.set(s.type, list);
      if (gate) this.gated.add(s.type);
    }
  }

  /**
   * Builds an engine: library modules first, then every rule's chunk. Any
   * failure is a HandlerError naming the rule (its payload file), and the
   * half-built state is released.
   */
  static async create(
    rules: RuleSource[],
    limits: RuleLimits,
    library: LibraryModules | null,
    opts: EngineOptions = {},
  ): Promise<BehaviorEngine> {
    const started = performance.now();
    const sandbox = await LuaSandbox.create({
      stateMemoryBytes: limits.stateMemoryMb * 1024 * 1024,
      ...opts.sandbox,
    });
    try {
      const [rt] = sandbox.runChunkRefs(runtimeSource, "=behavior-runtime", [luaRef(sandbox.internals)]);
      if (rt === undefined) throw new Error("runtime did not initialise");
      const fileOf = new Map([...rules, ...(library?.modules ?? [])].map((r) => [r.name, r.file]));
      if (library) {
        const failure = sandbox.call(rt, "load_library", library.modules, library.limits)[0] as {
          name: string;
          message: string;
        } | null;
        if (failure) {
          throw new HandlerError(
            "HND_PRODUCT_LOAD_FAILED",
            `ProductRulesFeed v${library.version}: module ${failure.name}: ${failure.message}`,
            { file: fileOf.get(failure.name) },
          );
        }
      }
      const failures = sandbox.call(rt, "load_rules", rules, limits)[0] as {
        rule: string;
        message: string;
      }[];
      if (failures.length > 0) {
        const f = failures[0]!;
        throw new HandlerError(
          "HND_RULE_LOAD_FAILED",
          `${fileOf.get(f.rule) ?? f.rule}: rule ${f.rule} failed to load: ${f.message}${
            failures.length > 1 ? ` (and ${failures.length - 1} more)` : ""
          }`,
          { file: fileOf.get(f.rule), details: { failures } },
        );
      }
      return new BehaviorEngine(
        sandbox,
        rt,
        rules.length,
        library?.version ?? null,
        performance.now() - started,
        opts,
      );
    } catch (e) {
      sandbox.close();
      throw e;
    }
  }

  /** Compiles every rule without running anything: syntax errors, named by file. */
  static async checkSyntax(rules: RuleSource[], limits: RuleLimits): Promise<void> {
    const sandbox = await LuaSandbox.create({ stateMemoryBytes: limits.stateMemoryMb * 1024 * 1024 });
    try {
      const [rt] = sandbox.runChunkRefs(runtimeSource, "=behavior-runtime", [luaRef(sandbox.internals)]);
      const failures = sandbox.call(rt!, "check_syntax", rules)[0] as { rule: string; message: string }[];
      const f = failures[0];
      if (f) {
        const file = rules.find((r) => r.name === f.rule)?.file;
        throw new HandlerError("HND_RULE_SYNTAX", `${file ?? f.rule}: ${f.message}`, { file });
      }
    } finally {
      sandbox.close();
    }
  }

  /** Event types some rule subscribes to (the sensor need not produce others). */
  subscribedTypes(): string[] {
    return [...this.byType.keys()].sort();
  }

  process(events: BehaviorEvent[]): ProcessResult {
    const result: ProcessResult = {
      events: events.length,
      delivered: 0,
      filtered: 0,
      detections: [],
      logs: [],
      disabled: [],
      skipped: 0,
    };
    const deadline = performance.now() + this.deadlineMs;
    let batch: BehaviorEvent[] = [];
    let stopped = false;
    for (const event of events) {
      if (stopped) {
        result.skipped++;
        continue;
      }
      const subs = this.byType.get(event.type);
      let ids: number[] | null = null;
      if (!subs || subs.length === 0) {
        result.filtered++;
        continue;
      }
      if (this.gated.has(event.type)) {
        ids = [];
        for (const s of subs) if (!s.gate || s.gate.admit(event, event.time)) ids.push(s.id);
        if (ids.length === 0) {
          result.filtered++;
          continue;
        }
        if (ids.length === subs.length) ids = null;
      }
      if (!this.encoder.add(event, ids)) {
        this.totals.dropped++;
        continue;
      }
      batch.push(event);
      result.delivered++;
      if (batch.length >= this.batchSize) {
        stopped = !this.flush(batch, result, deadline);
        batch = [];
      }
    }
    if (batch.length > 0) this.flush(batch, result, deadline);
    this.totals.events += events.length;
    this.totals.filtered += result.filtered;
    this.totals.skipped += result.skipped;
    return result;
  }

  /** Delivers one batch; false when it stopped at the deadline (the rest of the call is skipped). */
  private flush(batch: BehaviorEvent[], result: ProcessResult, deadline: number): boolean {
    const { bytes, newSchemas } = this.encoder.take();
    for (const s of newSchemas) this.sandbox.call(this.rt, "define_schema", s.id, s.fmt, s.names, s.booleans);
    const started = performance.now();
    const out = this.sandbox.callWithBytes(
      this.rt,
      "dispatch",
      bytes,
      Math.max(1, Math.floor(deadline - started)),
    )[0] as {
      detections: { rule: string; event: number; fields: Record<string, string | number | boolean> }[];
      logs: RuleLog[];
      disabled: string[];
      stopped: number | false;
    };
    const ms = performance.now() - started;
    this.totals.batches++;
    this.totals.batchMs += ms;
    if (ms > this.totals.maxBatchMs) this.totals.maxBatchMs = ms;
    for (const d of out.detections) {
      const { title, severity, ...fields } = d.fields;
      result.detections.push({
        rule: d.rule,
        title: String(title),
        severity: String(severity),
        fields,
        event: batch[d.event - 1]!,
      });
    }
    result.logs.push(...out.logs);
    if (out.disabled.length > 0) {
      result.disabled.push(...out.disabled);
      this.dropRules(new Set(out.disabled));
    }
    if (out.stopped === false) return true;
    result.skipped += batch.length - out.stopped;
    result.delivered -= batch.length - out.stopped;
    return false;
  }

  /** A disabled rule's subscriptions stop costing anything on the JS side too. */
  private dropRules(rules: Set<string>): void {
    for (const [type, list] of this.byType) {
      const kept = list.filter((s) => !rules.has(s.rule));
      if (kept.length === 0) this.byType.delete(type);
      else this.byType.set(type, kept);
    }
  }

  stats(): EngineStats {
    const s = this.sandbox.call(this.rt, "stats")[0] as { rules: RuleStats[]; library: RuleStats[] };
    const norm = (r: RuleStats): RuleStats => ({ ...r, lastError: r.lastError || null });
    return {
      rules: s.rules.map(norm),
      library: s.library.map(norm),
      heapBytes: this.sandbox.memoryBytes(),
      ...this.totals,
      aggregation: this.subs
        .filter((x) => x.gate?.filter)
        .map((x) => ({ rule: x.rule, type: x.type, ...x.gate!.filter!.counters })),
      conditions: this.subs
        .filter((x) => x.gate?.hasConditions)
        .map((x) => ({ rule: x.rule, type: x.type, ...x.gate!.conditionCounters })),
    };
  }

  heapBytes(): number {
    return this.sandbox.memoryBytes();
  }

  libraryFunctions(): { module: string; functions: string[] }[] {
    return this.sandbox.call(this.rt, "library_functions")[0] as { module: string; functions: string[] }[];
  }

  close(): void {
    this.sandbox.close();
  }
}
