/**
 * One telemetry report: what the agent already measures, and nothing that
 * identifies a person or a machine's contents. Built by an allow-list, not
 * by scrubbing: every field is picked by name from its source (rule stats,
 * query stats, Prometheus counters with allow-listed labels, host table,
 * health changes without their messages), so a source that grows a new
 * field (a path, a command line, a user name) does not leak it here. The
 * zod schema (core/telemetry/report-schema.ts) is the contract;
 * docs/telemetry.md lists every field and report.test.ts proves nothing
 * else is sent.
 */
import type { z } from "../../core/schema/zod.ts";
import {
  type MetricRow,
  type QueryRow,
  REPORT_SCHEMA,
  ReportSchema,
  type RuleRow,
  type TelemetryReport,
} from "../../core/telemetry/report-schema.ts";

export { REPORT_SCHEMA, ReportSchema, type TelemetryReport };

/**
 * Metric name → the label keys that may travel with it (values are codes,
 * types, groups, outcomes, bucket bounds). docs/telemetry.md's metrics table
 * is this list; report.test.ts keeps the two equal.
 */
export const METRIC_ALLOWLIST: Record<string, readonly string[]> = {
  outpost_update_cycles_total: ["result"],
  outpost_update_rejections_total: ["code", "type"],
  outpost_content_installs_total: ["type"],
  outpost_content_rollbacks_total: ["type", "trigger"],
  outpost_host_restarts_total: ["group"],
  outpost_host_crashes_total: ["group", "reason"],
  outpost_host_events_dropped_total: ["group"],
  outpost_scan_bytes_total: ["source"],
  outpost_scan_detections_total: ["kind", "verdict"],
  // The scan-duration histogram (handlers/DatasetA/scan/scan-metrics.ts): buckets, sum and count.
  outpost_scan_duration_seconds_bucket: ["mode", "target", "le"],
  outpost_scan_duration_seconds_sum: ["mode", "target"],
  outpost_scan_duration_seconds_count: ["mode", "target"],
  outpost_onaccess_files_total: ["outcome"],
  outpost_sensor_events_total: ["type"],
  outpost_sensor_events_dropped_total: ["consumer"],
  outpost_ml_scores_total: ["model", "mode", "band"],
  outpost_ml_faults_total: ["model", "fault"],
  outpost_sxl_lookups_total: ["outcome"],
  outpost_behavior_events_total: ["outcome"],
  // Recorded by rule; per-rule faults travel in rules[], so the series goes summed.
  outpost_rule_faults_total: [],
  outpost_repair_runs_total: ["result"],
  outpost_query_watchdog_kills_total: [],
  outpost_health_reason: ["source", "code", "level"],
  outpost_process_resident_memory_bytes: [],
  outpost_process_uptime_seconds: [],
};

/** Label values that are identifiers, not free text: anything else is replaced. */
const SAFE_VALUE = /^[A-Za-z0-9_.:-]{0,64}$/;
/** A histogram bucket's upper bound: a number or +Inf, nothing else. */
const BUCKET_BOUND = /^(\+Inf|[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?)$/;

const safeLabel = (key: string, value: string) =>
  (key === "le" ? BUCKET_BOUND : SAFE_VALUE).test(value) ? value : "other";

/**
 * Picks the allow-listed series out of Prometheus text. Labels not allowed
 * for the metric are dropped and the series summed over them (cumulative
 * histogram buckets stay cumulative when summed); a label value that is not
 * a plain identifier (or, for `le`, a bucket bound) becomes "other".
 */
export function pickMetrics(text: string): z.infer<typeof MetricRow>[] {
  const sums = new Map<string, { name: string; labels: Record<string, string>; value: number }>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const allowed = METRIC_ALLOWLIST[m[1]!];
    if (!allowed) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (!allowed.includes(l[1]!)) continue;
      labels[l[1]!] = safeLabel(l[1]!, l[2]!);
    }
    const key = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`;
    const prev = sums.get(key);
    if (prev) prev.value += value;
    else sums.set(key, { name: m[1]!, labels, value });
  }
  return [...sums.values()];
}

export interface HealthChangeRecord {
  at: string;
  change: "raised" | "updated" | "cleared";
  source: string;
  level: "red" | "amber" | "info";
  code: string;
}

/** The inputs, as loosely typed as their sources (handler call results cross IPC as JSON). */
export interface ReportInputs {
  reportId: string;
  agentId: string;
  agentVersion: string;
  updateGroup: string;
  periodStart: Date;
  periodEnd: Date;
  status: {
    health: "green" | "amber" | "red";
    content: { type: string; version: number | null; handlerState: string }[];
    hosts: {
      group: string;
      state: string;
      restarts?: number;
      crashesInWindow?: number;
      rssBytes?: number | null;
    }[];
  };
  /** Behavior's `stats` (rules + library), or undefined when not loaded. */
  ruleStats?: unknown;
  /** ScheduledQueryPack's `stats`, or undefined. */
  queryStats?: unknown;
  metricsText: string;
  healthHistory: readonly HealthChangeRecord[];
}

const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);
const name = (v: unknown) => (typeof v === "string" ? v.slice(0, 128) : "?");

function ruleRows(stats: unknown): z.infer<typeof RuleRow>[] {
  const s = stats as { rules?: unknown[]; library?: unknown[] } | undefined;
  const all = [...(Array.isArray(s?.rules) ? s.rules : []), ...(Array.isArray(s?.library) ? s.library : [])];
  return all.map((r) => {
    const x = r as Record<string, unknown>;
    return {
      rule: name(x.name),
      calls: num(x.calls),
      timeMs: num(x.timeMs),
      maxMs: num(x.maxMs),
      faults: num(x.faults),
      limitFaults: num(x.limitFaults),
      detections: num(x.detections),
      disabled: x.disabled === true,
    };
  });
}

function queryRows(stats: unknown): z.infer<typeof QueryRow>[] {
  const q = (stats as { queries?: unknown[] } | undefined)?.queries;
  return (Array.isArray(q) ? q : []).map((r) => {
    const x = r as Record<string, unknown>;
    return {
      query: name(x.name),
      runs: num(x.runs),
      rows: num(x.rows),
      wallMsTotal: num(x.wallMsTotal),
      errors: num(x.errors),
      watchdogKills: num(x.watchdogKills),
      denylisted: typeof x.denylistedUntil === "string",
    };
  });
}

export function buildReport(i: ReportInputs): TelemetryReport {
  const report: TelemetryReport = {
    schema: REPORT_SCHEMA,
    reportId: i.reportId,
    agentId: i.agentId,
    agentVersion: i.agentVersion,
    updateGroup: i.updateGroup,
    periodStart: i.periodStart.toISOString(),
    periodEnd: i.periodEnd.toISOString(),
    health: i.status.health,
    content: i.status.content.map((c) => ({
      type: name(c.type),
      version: c.version,
      handlerState: name(c.handlerState),
    })),
    rules: ruleRows(i.ruleStats),
    queries: queryRows(i.queryStats),
    hosts: i.status.hosts.map((h) => ({
      group: name(h.group),
      state: name(h.state),
      restarts: num(h.restarts),
      crashesInWindow: num(h.crashesInWindow),
      rssBytes: typeof h.rssBytes === "number" ? h.rssBytes : null,
    })),
    metrics: pickMetrics(i.metricsText),
    healthHistory: i.healthHistory.slice(-1000).map((h) => ({
      at: h.at,
      change: h.change,
      source: name(h.source),
      level: h.level,
      code: name(h.code),
    })),
  };
  // The schema is the contract: a report that does not fit it is a bug here, never sent.
  return ReportSchema.parse(report);
}
