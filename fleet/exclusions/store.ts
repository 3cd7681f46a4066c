/**
 * Exclusion reports on the fleet service, in the fleet database (table
 * `agent_exclusions`, migration 004_exclusions.sql; SQLite or PostgreSQL
 * through fleet/db/driver.ts): per agent, the latest summary its heartbeat
 * announced and the latest full list it sent. Every replica on one database
 * shares them, so an agent is asked for a list once, whichever replica its
 * heartbeats reach, and every replica's console and `contentctl fleet
 * exclusions --db …` show the same lists.
 *
 * `noteSummary()` is how the heartbeat route decides to ask for the list:
 * only when the summary's hash is not the hash of the list already held. A
 * steady agent costs one indexed read per heartbeat; a row is written only
 * when its summary changes. Concurrent replicas write the same values
 * (summaries and lists are keyed by the agent and identified by their hash),
 * so a race between them stores one and the same thing.
 */
import type { ExclusionReport } from "../../core/exclusions/report.ts";
import { type Driver, num, type Row } from "../db/driver.ts";

export interface AgentExclusionsRow {
  tenant: string;
  agentId: string;
  count: number;
  hash: string;
  bySource: Record<string, number>;
  /** When the agent first announced this summary (its hash). */
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

export interface ExclusionSummaryIn {
  count: number;
  hash: string;
  bySource?: Record<string, number>;
}

const SUMMARY_COLUMNS = "tenant, agent_id, excl_count, hash, by_source, summary_at, list_hash, list_at";

export class ExclusionStore {
  constructor(private readonly db: Driver) {}

  /** Records a heartbeat's summary; true when the fleet should ask for the full list. */
  async noteSummary(tenant: string, agentId: string, s: ExclusionSummaryIn, at: Date): Promise<boolean> {
    const bySource = JSON.stringify(s.bySource ?? {});
    const [held] = await this.db.all(
      "SELECT excl_count, hash, by_source, list_hash FROM agent_exclusions WHERE tenant = $1 AND agent_id = $2",
      [tenant, agentId],
    );
    const same =
      held && held.hash === s.hash && num(held.excl_count) === s.count && held.by_source === bySource;
    if (!same) {
      await this.db.run(
        `INSERT INTO agent_exclusions (tenant, agent_id, excl_count, hash, by_source, summary_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant, agent_id) DO UPDATE SET excl_count = excluded.excl_count, hash = excluded.hash,
           by_source = excluded.by_source, summary_at = excluded.summary_at`,
        [tenant, agentId, s.count, s.hash, bySource, at.toISOString()],
      );
    }
    return (held?.list_hash ?? null) !== s.hash;
  }

  /**
   * True when the agent's latest heartbeat summary announced exactly this list (hash and count) and the
   * fleet does not hold it yet: an enrolled agent's summary arrived in a signed heartbeat, so a list whose
   * own SHA-256 is that hash is the agent's, without a tenant token.
   */
  async expects(tenant: string, agentId: string, hash: string, count: number): Promise<boolean> {
    const [row] = await this.db.all(
      "SELECT hash, excl_count, list_hash FROM agent_exclusions WHERE tenant = $1 AND agent_id = $2",
      [tenant, agentId],
    );
    return row !== undefined && row.hash === hash && num(row.excl_count) === count && row.list_hash !== hash;
  }

  /** Stores a full list; false when the same list (same hash) was already held. */
  async storeList(tenant: string, r: ExclusionReport, at: Date): Promise<boolean> {
    const [held] = await this.db.all(
      "SELECT list_hash FROM agent_exclusions WHERE tenant = $1 AND agent_id = $2",
      [tenant, r.agentId],
    );
    if (held?.list_hash === r.summary.hash) return false;
    await this.db.run(
      `INSERT INTO agent_exclusions (tenant, agent_id, excl_count, hash, by_source, summary_at, list_hash, list_json, list_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (tenant, agent_id) DO UPDATE SET list_hash = excluded.list_hash, list_json = excluded.list_json,
         list_at = excluded.list_at`,
      [
        tenant,
        r.agentId,
        r.summary.count,
        r.summary.hash,
        JSON.stringify(r.summary.bySource ?? {}),
        at.toISOString(),
        r.summary.hash,
        JSON.stringify(r.exclusions),
        at.toISOString(),
      ],
    );
    return true;
  }

  /** Every agent's summary (the lists themselves are not read). */
  async agents(): Promise<AgentExclusionsRow[]> {
    const rows = await this.db.all(
      `SELECT ${SUMMARY_COLUMNS} FROM agent_exclusions ORDER BY tenant, agent_id`,
    );
    return rows.map(rowOf);
  }

  async agent(agentId: string): Promise<AgentExclusions | null> {
    const [r] = await this.db.all(
      `SELECT ${SUMMARY_COLUMNS}, list_json FROM agent_exclusions WHERE agent_id = $1 ORDER BY tenant LIMIT 1`,
      [agentId],
    );
    if (!r) return null;
    const row = rowOf(r);
    return {
      ...row,
      exclusions: typeof r.list_json === "string" ? JSON.parse(r.list_json) : null,
      stale: row.listHash !== row.hash,
    };
  }
}

function rowOf(r: Row): AgentExclusionsRow {
  return {
    tenant: r.tenant as string,
    agentId: r.agent_id as string,
    count: num(r.excl_count),
    hash: r.hash as string,
    bySource: JSON.parse(r.by_source as string),
    summaryAt: r.summary_at as string,
    listHash: (r.list_hash as string | null) ?? null,
    listAt: (r.list_at as string | null) ?? null,
  };
}
