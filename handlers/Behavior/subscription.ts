/**
 * What stands between an event and one subscription's reactor: the
 * subscription's conditions (conditions.ts) and its aggregation
 * (aggregate.ts), both declared in the options table of `on()`.
 *
 * Order. Conditions run first — the cheap test that rejects most events —
 * whenever that cannot change what aggregation decides: when every
 * aggregation stage keys on the fields the conditions read, events that fail
 * the conditions never share a key with events that pass, so leaving them out
 * of the aggregation state changes nothing. Otherwise (e.g. `min_rate` per
 * pid with a condition on the path: the rate is over all of the pid's
 * events) aggregation sees every event first and the conditions run after
 * it, so the detections are the same with or without the pre-filter.
 */
import { HandlerError } from "../../core/errors.ts";
import { type Aggregation, AggregationSchema, SubscriptionFilter } from "./aggregate.ts";
import type { FlatEvent } from "./codec.ts";
import {
  CONDITION_KEYS,
  type Conditions,
  ConditionsSchema,
  compileConditions,
  conditionFields,
  type Predicate,
} from "./conditions.ts";

const AGGREGATION_KEYS = new Set(["coalesce", "min_rate", "first"]);

export interface GateOptions {
  /** Deliver regardless of aggregation (benchmarks, rule tests). */
  ignoreAggregation?: boolean;
  /** Deliver regardless of conditions (`agent rules test` proves the pre-filter changes nothing). */
  ignoreConditions?: boolean;
}

export interface ConditionCounters {
  seen: number;
  passed: number;
}

export class SubscriptionGate {
  readonly conditionCounters: ConditionCounters = { seen: 0, passed: 0 };

  private constructor(
    readonly filter: SubscriptionFilter | null,
    private readonly cond: Predicate | null,
    /** Conditions before aggregation (see the file comment). */
    readonly conditionsFirst: boolean,
  ) {}

  get hasConditions(): boolean {
    return this.cond !== null;
  }

  /** Whether the subscription receives the event. */
  admit(event: FlatEvent, time: number): boolean {
    const { cond, filter } = this;
    if (cond && this.conditionsFirst && !this.test(cond, event)) return false;
    if (filter && !filter.admit(event, time)) return false;
    if (cond && !this.conditionsFirst && !this.test(cond, event)) return false;
    return true;
  }

  private test(cond: Predicate, event: FlatEvent): boolean {
    this.conditionCounters.seen++;
    if (!cond(event)) return false;
    this.conditionCounters.passed++;
    return true;
  }

  /**
   * Builds the gate of one `on(type, …)` from its options table (plain data
   * from Lua); null when nothing applies. Bad options are a load error naming the rule.
   */
  static fromOptions(rule: string, type: string, raw: unknown, opts: GateOptions): SubscriptionGate | null {
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) return null;
    const agg: Record<string, unknown> = {};
    const cond: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw)) {
      if (AGGREGATION_KEYS.has(k)) agg[k] = v;
      else if (CONDITION_KEYS.has(k)) cond[k] = v;
      else {
        throw new HandlerError(
          "HND_RULE_CONDITION_INVALID",
          `${rule}: on("${type}") options: unknown option "${k}" (expected coalesce, min_rate, first or a condition such as exe_in, path_prefix, cmdline_contains; see docs/rules.md)`,
          { file: rule },
        );
      }
    }
    const a = AggregationSchema.safeParse(agg);
    if (!a.success) {
      const issue = a.error.issues[0];
      throw new HandlerError(
        "HND_RULE_AGGREGATION_INVALID",
        `${rule}: on("${type}") options: ${issue?.path.join(".")}: ${issue?.message}`,
        { file: rule },
      );
    }
    const c = ConditionsSchema.safeParse(cond);
    if (!c.success) {
      const issue = c.error.issues[0];
      throw new HandlerError(
        "HND_RULE_CONDITION_INVALID",
        `${rule}: on("${type}") condition ${issue?.path.join(".")}: ${issue?.message}`,
        { file: rule },
      );
    }
    const aggregation: Aggregation = opts.ignoreAggregation ? {} : a.data;
    const conditions = opts.ignoreConditions ? {} : (c.data as Conditions);
    const filter = Object.keys(aggregation).length > 0 ? new SubscriptionFilter(aggregation) : null;
    const pred = compileConditions(conditions);
    if (!filter && !pred) return null;
    return new SubscriptionGate(filter, pred, conditionsMayGoFirst(aggregation, conditionFields(conditions)));
  }
}

/** True when every aggregation stage's key includes every field the conditions read. */
export function conditionsMayGoFirst(agg: Aggregation, fields: Set<string>): boolean {
  // coalesce without a key compares all fields; min_rate and first default to the type alone.
  const keys: (string[] | undefined)[] = [];
  if (agg.coalesce?.key) keys.push(agg.coalesce.key);
  if (agg.min_rate) keys.push(agg.min_rate.key ?? ["type"]);
  if (agg.first) keys.push(agg.first.key ?? ["type"]);
  for (const key of keys) {
    for (const f of fields) if (!key!.includes(f)) return false;
  }
  return true;
}
