/**
 * Per-rule telemetry in the supervisor's /metrics. The rules run in the
 * `behavior` host process, whose registry nobody scrapes; their numbers
 * reach the supervisor as `rules-stats` events (published every
 * statsIntervalSeconds and on every stats request) and as the answer to
 * GET /v1/rules/stats. Both feed `recordRuleStats`, which turns the
 * host's running totals into counter increments (a reload starts the
 * totals again; a drop is taken as a restart from zero).
 */
import { metrics } from "../../core/metrics.ts";

const calls = metrics.counter("outpost_rule_calls_total", "Behavior rule invocations, by rule");
const seconds = metrics.counter("outpost_rule_seconds_total", "Time spent in each Behavior rule");
const faults = metrics.counter(
  "outpost_rule_faults_total",
  "Behavior rule faults (errors, exceeded limits), by rule",
);
const detections = metrics.counter("outpost_rule_detections_total", "Detections raised, by rule");
const maxSeconds = metrics.gauge(
  "outpost_rule_max_seconds",
  "Longest single call of each rule since its rules loaded",
);
const disabled = metrics.gauge("outpost_rule_disabled", "1 when a rule was disabled after repeated faults");
const events = metrics.counter(
  "outpost_behavior_events_total",
  "Events offered to the Behavior rules, by outcome",
);
const heap = metrics.gauge("outpost_behavior_lua_heap_bytes", "Memory held by the Behavior Lua state");

/** name, calls, timeMs, maxMs, faults, disabled (0/1), detections */
export type RuleRow = [string, number, number, number, number, number, number];

export interface RulesStatsSnapshot {
  version: number;
  rules: RuleRow[];
  events: number;
  filtered: number;
  dropped: number;
  heapBytes: number;
}

const last = new Map<string, number[]>();

function delta(key: string, now: number[]): number[] {
  const prev = last.get(key);
  last.set(key, now);
  if (!prev) return now;
  return now.map((v, i) => (v >= (prev[i] ?? 0) ? v - (prev[i] ?? 0) : v));
}

export function recordRuleStats(s: RulesStatsSnapshot): void {
  for (const [name, c, ms, maxMs, f, dis, det] of s.rules) {
    const [dc, dms, df, ddet] = delta(`rule:${name}`, [c, ms, f, det]) as [number, number, number, number];
    const labels = { rule: name };
    if (dc) calls.inc(labels, dc);
    if (dms) seconds.inc(labels, dms / 1000);
    if (df) faults.inc(labels, df);
    if (ddet) detections.inc(labels, ddet);
    maxSeconds.set(labels, maxMs / 1000);
    disabled.set(labels, dis);
  }
  const delivered = s.events - s.filtered - s.dropped;
  const [de, df, dd] = delta("events", [delivered, s.filtered, s.dropped]) as [number, number, number];
  if (de) events.inc({ outcome: "delivered" }, de);
  if (df) events.inc({ outcome: "filtered" }, df);
  if (dd) events.inc({ outcome: "dropped" }, dd);
  heap.set(undefined, s.heapBytes);
}
