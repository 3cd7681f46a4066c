/**
 * Exclusion reports on the fleet service, in SQLite (bun:sqlite, WAL) in the
 * release state folder: per agent, the latest summary from its heartbeat
 * and the latest full list it sent. `wants()` is how the heartbeat route
 * decides to ask for the list: only when the summary's hash is not the
 * hash of the list already held.
 */
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { ExclusionReport } from "../../core/exclusions/report.ts";

export interface AgentExclusionsRow {
  tenant: string;
  agentId: string;
  count: number;
  hash: string;
  bySource: Record<string, number>;
  summaryAt: string;
  /** Hash of the full list held (null: none received yet). */
  listHash: string | null;
  listAt: string | null;
}

export interface AgentExclusions extends AgentExclusionsRow {
  /** The full list, when held and current. */
  exclusions: ExclusionReport["exclusions"] | null;
  /** True when the held list is older than the latest summary. */
  stale: boolean;
}

export class ExclusionStore {
  private readonly db: Database;

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file, { create: true });
    // Replicas sharing a state dir open this file at once: wait for the other's schema, do not fail.
    this.db.exec("PRAGMA busy_timeout = 5000");
    this.db.exec("PRAGMA journal_mode = WAL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS agent_exclusions (
      tenant TEXT NOT NULL, agent_id TEXT NOT NULL,
      count INTEGER NOT NULL, hash TEXT NOT NULL, by_source TEXT NOT NULL, summary_at TEXT NOT NULL,
      list_hash TEXT, list_json TEXT, list_at TEXT,
      PRIMARY KEY (tenant, agent_id))`);
  }

  /** Records a heartbeat's summary; true when the fleet should ask for the full list. */
  noteSummary(
    tenant: string,
    agentId: string,
    s: { count: number; hash: string; bySource?: Record<string, number> },
    at: Date,
  ): boolean {
    this.db
      .query(
        `INSERT INTO agent_exclusions (tenant, agent_id, count, hash, by_source, summary_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (tenant, agent_id) DO UPDATE SET count = excluded.count, hash = excluded.hash,
           by_source = excluded.by_source, summary_at = excluded.summary_at`,
      )
      .run(tenant, agentId, s.count, s.hash, JSON.stringify(s.bySource ?? {}), at.toISOString());
    const row = this.db
      .query("SELECT list_hash FROM agent_exclusions WHERE tenant = ? AND agent_id = ?")
      .get(tenant, agentId) as {
      list_hash: string | null;
    };
    return row.list_hash !== s.hash;
  }

  /**
   * True when the agent's latest heartbeat summary announced exactly this list (hash and count) and the
   * fleet does not hold it yet: an enrolled agent's summary arrived in a signed heartbeat, so a list whose
   * own SHA-256 is that hash is the agent's, without a tenant token.
   */
  expects(tenant: string, agentId: string, hash: string, count: number): boolean {
    const row = this.db
      .query("SELECT hash, count, list_hash FROM agent_exclusions WHERE tenant = ? AND agent_id = ?")
      .get(tenant, agentId) as { hash: string; count: number; list_hash: string | null } | null;
    return row !== null && row.hash === hash && row.count === count && row.list_hash !== hash;
  }

  /** Stores a full list; false when the same list (same hash) was already held. */
  storeList(tenant: string, r: ExclusionReport, at: Date): boolean {
    const held = this.db
      .query("SELECT list_hash FROM agent_exclusions WHERE tenant = ? AND agent_id = ?")
      .get(tenant, r.agentId) as { list_hash: string | null } | null;
    if (held?.list_hash === r.summary.hash) return false;
    this.db
      .query(
        `INSERT INTO agent_exclusions (tenant, agent_id, count, hash, by_source, summary_at, list_hash, list_json, list_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (tenant, agent_id) DO UPDATE SET list_hash = excluded.list_hash, list_json = excluded.list_json,
           list_at = excluded.list_at`,
      )
      .run(
        tenant,
        r.agentId,
        r.summary.count,
        r.summary.hash,
        JSON.stringify(r.summary.bySource ?? {}),
        at.toISOString(),
        r.summary.hash,
        JSON.stringify(r.exclusions),
        at.toISOString(),
      );
    return true;
  }

  agents(): AgentExclusionsRow[] {
    return (
      this.db.query("SELECT * FROM agent_exclusions ORDER BY tenant, agent_id").all() as Record<
        string,
        unknown
      >[]
    ).map(rowOf);
  }

  agent(agentId: string): AgentExclusions | null {
    const r = this.db.query("SELECT * FROM agent_exclusions WHERE agent_id = ?").get(agentId) as Record<
      string,
      unknown
    > | null;
    if (!r) return null;
    const row = rowOf(r);
    return {
      ...row,
      exclusions: typeof r.list_json === "string" ? JSON.parse(r.list_json) : null,
      stale: row.listHash !== row.hash,
    };
  }

  close(): void {
    this.db.close();
  }
}

function rowOf(r: Record<string, unknown>): AgentExclusionsRow {
  return {
    tenant: r.tenant as string,
    agentId: r.agent_id as string,
    count: r.count as number,
    hash: r.hash as string,
    bySource: JSON.parse(r.by_source as string),
    summaryAt: r.summary_at as string,
    listHash: (r.list_hash as string | null) ?? null,
    listAt: (r.list_at as string | null) ?? null,
  };
}
