/**
 * Telemetry reports on the fleet service, in SQLite (bun:sqlite, WAL): one
 * row per report keyed by the upload's Idempotency-Key, so a report an
 * agent sends again after an ambiguous failure is stored once, plus one row
 * per rule per report for the runtime view. Reports older than the
 * retention are pruned on insert.
 */
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { TelemetryReport } from "../../core/telemetry/report-schema.ts";

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
  private readonly db: Database;

  constructor(
    path: string,
    private readonly retentionDays = 30,
  ) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new Database(path, { create: true });
    this.db.exec("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS reports (
        key TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        report_id TEXT NOT NULL,
        received_at TEXT NOT NULL,
        period_end TEXT NOT NULL,
        body TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS reports_agent ON reports(agent_id, period_end);
      CREATE TABLE IF NOT EXISTS rule_runtime (
        key TEXT NOT NULL REFERENCES reports(key) ON DELETE CASCADE,
        agent_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        calls REAL NOT NULL,
        time_ms REAL NOT NULL,
        max_ms REAL NOT NULL,
        faults REAL NOT NULL
      );
      CREATE INDEX IF NOT EXISTS rule_runtime_key ON rule_runtime(key);
    `);
  }

  /** Stores a report once per key; false when the key was already stored (a retry). */
  insert(key: string, tenant: string, report: TelemetryReport, receivedAt: Date): boolean {
    const tx = this.db.transaction(() => {
      const r = this.db
        .query(
          "INSERT OR IGNORE INTO reports (key, tenant, agent_id, report_id, received_at, period_end, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .run(
          key,
          tenant,
          report.agentId,
          report.reportId,
          receivedAt.toISOString(),
          report.periodEnd,
          JSON.stringify(report),
        );
      if (r.changes === 0) return false;
      const ins = this.db.query(
        "INSERT INTO rule_runtime (key, agent_id, rule, calls, time_ms, max_ms, faults) VALUES (?, ?, ?, ?, ?, ?, ?)",
      );
      for (const rule of report.rules)
        ins.run(key, report.agentId, rule.rule, rule.calls, rule.timeMs, rule.maxMs, rule.faults);
      const cutoff = new Date(receivedAt.getTime() - this.retentionDays * 86400_000).toISOString();
      this.db
        .query("DELETE FROM rule_runtime WHERE key IN (SELECT key FROM reports WHERE received_at < ?)")
        .run(cutoff);
      this.db.query("DELETE FROM reports WHERE received_at < ?").run(cutoff);
      return true;
    });
    return tx() as boolean;
  }

  /**
   * One ML model's fleet telemetry since `since` (T4, fleet/type-rules.ts): each agent's latest
   * report counts once (its counters are cumulative), summed over outpost_ml_scores_total in
   * telemetry mode. An agent restart resets its counters, so this can only undercount.
   */
  mlEvidence(model: string, since: string): { scores: number; over: number; agents: number } {
    const rows = this.db
      .query(
        "SELECT body FROM reports r WHERE period_end >= ? AND period_end = (SELECT MAX(period_end) FROM reports WHERE agent_id = r.agent_id)",
      )
      .all(since) as { body: string }[];
    let scores = 0;
    let over = 0;
    let agents = 0;
    for (const { body } of rows) {
      const report = JSON.parse(body) as TelemetryReport;
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

  count(): number {
    return (this.db.query("SELECT COUNT(*) AS n FROM reports").get() as { n: number }).n;
  }

  reports(limit = 100): { key: string; agentId: string; receivedAt: string; report: TelemetryReport }[] {
    return (
      this.db
        .query("SELECT key, agent_id, received_at, body FROM reports ORDER BY received_at DESC LIMIT ?")
        .all(limit) as { key: string; agent_id: string; received_at: string; body: string }[]
    ).map((r) => ({
      key: r.key,
      agentId: r.agent_id,
      receivedAt: r.received_at,
      report: JSON.parse(r.body),
    }));
  }

  /**
   * Fleet-wide rule runtimes from each agent's latest report (cumulative
   * counters, so the latest one is that agent's whole picture): percentiles
   * over agents of mean ms per call, and the slowest rules by p95.
   */
  view(slowest = 10): TelemetryView {
    const rows = this.db
      .query(
        `SELECT r.rule, r.agent_id, r.calls, r.time_ms, r.max_ms, r.faults FROM rule_runtime r
         JOIN (SELECT agent_id, MAX(period_end) AS pe FROM reports GROUP BY agent_id) latest
           ON latest.agent_id = r.agent_id
         JOIN reports rep ON rep.key = r.key AND rep.period_end = latest.pe`,
      )
      .all() as {
      rule: string;
      agent_id: string;
      calls: number;
      time_ms: number;
      max_ms: number;
      faults: number;
    }[];
    const byRule = new Map<
      string,
      { means: number[]; calls: number; faults: number; maxMs: number; agents: Set<string> }
    >();
    for (const r of rows) {
      let e = byRule.get(r.rule);
      if (!e) {
        e = { means: [], calls: 0, faults: 0, maxMs: 0, agents: new Set() };
        byRule.set(r.rule, e);
      }
      if (e.agents.has(r.agent_id)) continue;
      e.agents.add(r.agent_id);
      e.calls += r.calls;
      e.faults += r.faults;
      e.maxMs = Math.max(e.maxMs, r.max_ms);
      if (r.calls > 0) e.means.push(r.time_ms / r.calls);
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
    const agg = this.db
      .query("SELECT COUNT(*) AS n, COUNT(DISTINCT agent_id) AS a, MAX(received_at) AS last FROM reports")
      .get() as { n: number; a: number; last: string | null };
    return {
      reports: agg.n,
      agents: agg.a,
      lastReceivedAt: agg.last,
      rules,
      slowest: [...rules].sort((a, b) => b.p95Ms - a.p95Ms || b.maxMs - a.maxMs).slice(0, slowest),
    };
  }

  close(): void {
    this.db.close();
  }
}
