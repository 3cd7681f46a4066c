/**
 * Telemetry reports on the fleet service, in the fleet database (tables
 * `telemetry_reports` and `telemetry_rule_runtime`, migration
 * 006_telemetry.sql; SQLite or PostgreSQL through fleet/db/driver.ts): one
 * row per report keyed by `<generation>:<seq>` from the upload's
 * Idempotency-Key, so a report an agent sends again after an ambiguous
 * failure — or that reaches two replicas — is stored once, plus one row per
 * rule per report for the runtime view. Every replica on one database shows
 * the same view and the ML live gate counts every report. Reports older than
 * the retention are pruned on insert.
 */
import type { TelemetryReport } from "../../core/telemetry/report-schema.ts";
import { type Driver, insertRows, num } from "../db/driver.ts";

export interface RuleRuntime {
  rule: string;
  /** Agents whose latest report ran the rule. */
  agents: number;
  calls: number;
  faults: number;
  /** Percentiles over agents of the mean milliseconds per call. */
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  /** Slowest single call any agent saw. */
  maxMs: number;
}

export interface TelemetryView {
  reports: number;
  agents: number;
  lastReceivedAt: string | null;
  rules: RuleRuntime[];
  slowest: RuleRuntime[];
}

/** Nearest-rank percentile of an ascending list. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export class TelemetryStore {
  constructor(
    private readonly db: Driver,
    private readonly retentionDays = 30,
  ) {}

  /** Stores a report once per key; false when the key was already stored (a retry, or another replica got it). */
  insert(key: string, tenant: string, report: TelemetryReport, receivedAt: Date): Promise<boolean> {
    return this.db.tx(async (q) => {
      const added = await q.run(
        `INSERT INTO telemetry_reports (key, tenant, agent_id, report_id, received_at, period_end, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING`,
        [
          key,
          tenant,
          report.agentId,
          report.reportId,
          receivedAt.toISOString(),
          report.periodEnd,
          JSON.stringify(report),
        ],
      );
      if (added === 0) return false;
      await insertRows(
        q,
        "INSERT INTO telemetry_rule_runtime (key, agent_id, rule, calls, time_ms, max_ms, faults) VALUES",
        report.rules.map((r) => [key, report.agentId, r.rule, r.calls, r.timeMs, r.maxMs, r.faults]),
        "",
      );
      const cutoff = new Date(receivedAt.getTime() - this.retentionDays * 86400_000).toISOString();
      await q.run(
        "DELETE FROM telemetry_rule_runtime WHERE key IN (SELECT key FROM telemetry_reports WHERE received_at < $1)",
        [cutoff],
      );
      await q.run("DELETE FROM telemetry_reports WHERE received_at < $1", [cutoff]);
      return true;
    });
  }

  /**
   * One ML model's fleet telemetry since `since` (T4, fleet/type-rules.ts): each agent's latest
   * report counts once (its counters are cumulative), summed over outpost_ml_scores_total in
   * telemetry mode. An agent restart resets its counters, so this can only undercount.
   */
  async mlEvidence(model: string, since: string): Promise<{ scores: number; over: number; agents: number }> {
    const rows = await this.db.all(
      `SELECT body FROM telemetry_reports r WHERE period_end >= $1
         AND period_end = (SELECT MAX(period_end) FROM telemetry_reports WHERE agent_id = r.agent_id)`,
      [since],
    );
    let scores = 0;
    let over = 0;
    let agents = 0;
    for (const { body } of rows) {
      const report = JSON.parse(body as string) as TelemetryReport;
      let seen = false;
      for (const m of report.metrics) {
        if (m.name !== "outpost_ml_scores_total" || m.labels.model !== model || m.labels.mode !== "telemetry")
          continue;
        seen = true;
        scores += m.value;
        if (m.labels.band === "over") over += m.value;
      }
      if (seen) agents++;
    }
    return { scores, over, agents };
  }

  async count(): Promise<number> {
    const [r] = await this.db.all("SELECT COUNT(*) AS n FROM telemetry_reports");
    return num(r?.n);
  }

  async reports(
    limit = 100,
  ): Promise<{ key: string; agentId: string; receivedAt: string; report: TelemetryReport }[]> {
    const rows = await this.db.all(
      "SELECT key, agent_id, received_at, body FROM telemetry_reports ORDER BY received_at DESC, key LIMIT $1",
      [limit],
    );
    return rows.map((r) => ({
      key: r.key as string,
      agentId: r.agent_id as string,
      receivedAt: r.received_at as string,
      report: JSON.parse(r.body as string),
    }));
  }

  /**
   * Fleet-wide rule runtimes from each agent's latest report (cumulative
   * counters, so the latest one is that agent's whole picture): percentiles
   * over agents of mean ms per call, and the slowest rules by p95.
   */
  async view(slowest = 10): Promise<TelemetryView> {
    const rows = await this.db.all(
      `SELECT r.rule, r.agent_id, r.calls, r.time_ms, r.max_ms, r.faults FROM telemetry_rule_runtime r
       JOIN (SELECT agent_id, MAX(period_end) AS pe FROM telemetry_reports GROUP BY agent_id) latest
         ON latest.agent_id = r.agent_id
       JOIN telemetry_reports rep ON rep.key = r.key AND rep.period_end = latest.pe`,
    );
    const byRule = new Map<
      string,
      { means: number[]; calls: number; faults: number; maxMs: number; agents: Set<string> }
    >();
    for (const r of rows) {
      const rule = r.rule as string;
      const agentId = r.agent_id as string;
      let e = byRule.get(rule);
      if (!e) {
        e = { means: [], calls: 0, faults: 0, maxMs: 0, agents: new Set() };
        byRule.set(rule, e);
      }
      if (e.agents.has(agentId)) continue;
      e.agents.add(agentId);
      const calls = num(r.calls);
      e.calls += calls;
      e.faults += num(r.faults);
      e.maxMs = Math.max(e.maxMs, num(r.max_ms));
      if (calls > 0) e.means.push(num(r.time_ms) / calls);
    }
    const rules: RuleRuntime[] = [...byRule].map(([rule, e]) => {
      const s = e.means.sort((a, b) => a - b);
      const round = (x: number) => Math.round(x * 1000) / 1000;
      return {
        rule,
        agents: e.agents.size,
        calls: e.calls,
        faults: e.faults,
        p50Ms: round(percentile(s, 50)),
        p95Ms: round(percentile(s, 95)),
        p99Ms: round(percentile(s, 99)),
        maxMs: round(e.maxMs),
      };
    });
    rules.sort((a, b) => a.rule.localeCompare(b.rule));
    const [agg] = await this.db.all(
      "SELECT COUNT(*) AS n, COUNT(DISTINCT agent_id) AS a, MAX(received_at) AS last FROM telemetry_reports",
    );
    return {
      reports: num(agg?.n),
      agents: num(agg?.a),
      lastReceivedAt: (agg?.last as string | null | undefined) ?? null,
      rules,
      slowest: [...rules].sort((a, b) => b.p95Ms - a.p95Ms || b.maxMs - a.maxMs).slice(0, slowest),
    };
  }
}
