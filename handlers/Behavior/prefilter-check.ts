/**
 * The proof `agent rules test` gives for a rule's conditions: run the same
 * rules over the same events twice — with the conditions as the engine
 * applies them, and with every event of a type delivered to every reactor —
 * and compare the detections. Conditions are only a pre-filter, so any
 * difference means a condition holds back events its reactor detects on
 * (a wrong condition), and it is reported with the rule and event line.
 */
import type { LibraryModules, RuleLimits, RuleSource } from "../_shared/lua/format.ts";
import { BehaviorEngine, type Detection, type ProcessResult } from "./engine.ts";
import type { BehaviorEvent } from "./events.ts";

export interface PrefilterDifference {
  rule: string;
  /** Event index (0-based) in the stream. */
  event: number;
  /** "missing": detected only without the pre-filter (the condition is wrong); "extra": only with it. */
  kind: "missing" | "extra";
  fields: Record<string, string | number | boolean>;
}

export interface PrefilterCheck {
  identical: boolean;
  /** Events the run without the pre-filter did not deliver (a call reached its deadline): then nothing is proven. */
  skippedWithout: number;
  withPrefilter: number;
  withoutPrefilter: number;
  /** Reactor calls with and without: what the conditions saved. */
  callsWith: number;
  callsWithout: number;
  differences: PrefilterDifference[];
}

const MAX_REPORTED = 20;
/** Events per `process` call offline: each call has its own deadline, so a long recording is not cut short. */
export const OFFLINE_CHUNK = 1000;

/** Runs a whole recording through `engine` in chunks, as the agent would receive it. */
export function processAll(engine: BehaviorEngine, events: BehaviorEvent[]): ProcessResult {
  const total: ProcessResult = {
    events: 0,
    delivered: 0,
    filtered: 0,
    detections: [],
    logs: [],
    disabled: [],
    skipped: 0,
  };
  for (let i = 0; i < events.length; i += OFFLINE_CHUNK) {
    const r = engine.process(events.slice(i, i + OFFLINE_CHUNK));
    total.events += r.events;
    total.delivered += r.delivered;
    total.filtered += r.filtered;
    total.skipped += r.skipped;
    for (const d of r.detections) total.detections.push(d);
    for (const l of r.logs) total.logs.push(l);
    total.disabled.push(...r.disabled);
  }
  return total;
}

/** One detection as comparable text: rule, event, title, severity and fields in key order. */
function canonical(d: Detection, index: Map<BehaviorEvent, number>): string {
  const fields = Object.fromEntries(Object.entries(d.fields).sort(([a], [b]) => (a < b ? -1 : 1)));
  return JSON.stringify([d.rule, index.get(d.event), d.title, d.severity, fields]);
}

/** Runs the rules without conditions and compares with `withDetections` (from a run with them). */
export async function checkPrefilter(
  rules: RuleSource[],
  limits: RuleLimits,
  library: LibraryModules | null,
  events: BehaviorEvent[],
  withDetections: Detection[],
  callsWith: number,
): Promise<PrefilterCheck> {
  const engine = await BehaviorEngine.create(rules, limits, library, { ignoreConditions: true });
  let without: Detection[];
  let callsWithout: number;
  let skippedWithout: number;
  try {
    const r = processAll(engine, events);
    without = r.detections;
    skippedWithout = r.skipped;
    callsWithout = engine.stats().rules.reduce((n, r) => n + r.calls, 0);
  } finally {
    engine.close();
  }
  const index = new Map(events.map((e, i) => [e, i]));
  const count = (list: Detection[]) => {
    const m = new Map<string, { d: Detection; n: number }>();
    for (const d of list) {
      const k = canonical(d, index);
      const cur = m.get(k);
      if (cur) cur.n++;
      else m.set(k, { d, n: 1 });
    }
    return m;
  };
  const a = count(withDetections);
  const b = count(without);
  const differences: PrefilterDifference[] = [];
  const diff = (from: typeof a, other: typeof a, kind: PrefilterDifference["kind"]) => {
    for (const [k, { d, n }] of from) {
      const m = other.get(k)?.n ?? 0;
      for (let i = m; i < n; i++) {
        differences.push({ rule: d.rule, event: index.get(d.event) ?? -1, kind, fields: d.fields });
      }
    }
  };
  diff(b, a, "missing");
  diff(a, b, "extra");
  differences.sort((x, y) => x.event - y.event || (x.rule < y.rule ? -1 : 1));
  return {
    identical: differences.length === 0 && skippedWithout === 0,
    skippedWithout,
    withPrefilter: withDetections.length,
    withoutPrefilter: without.length,
    callsWith,
    callsWithout,
    differences: differences.slice(0, MAX_REPORTED),
  };
}
