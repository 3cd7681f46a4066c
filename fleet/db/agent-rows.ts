/**
 * The SQL that writes agents' rows, and what the gate counters need of the
 * rows a heartbeat replaces: the previous agent row, locked, and the
 * previous content rows, taken out.
 */
import { type Driver, insertRows, num, type Param, type Queryable } from "./driver.ts";
import {
  AGENT_FACT_COLUMNS,
  type AgentFacts,
  agentFacts,
  CONTENT_FACT_COLUMNS,
  type ContentFacts,
  contentFacts,
} from "./gate-counters.ts";

/** Keys per `IN (…)` list. */
export const CHUNK = 500;
export const placeholders = (xs: readonly unknown[]) => xs.map((_, j) => `$${j + 1}`).join(",");

export const CONTENT_INSERT = `INSERT INTO agent_content (agent_key, type, grp, received_at, health, version, state,
  crashes, bad, rolled_back_from, tenant, vendor, pinned) VALUES`;

export const AGENT_INSERT = `INSERT INTO agents (agent_key, tenant, grp, received_at, health, rejected, agent_version,
  enrolled, vendor, cadence, pinned, counted) VALUES`;

/**
 * The rows of these agents as the gate counted them (absent: new, or not
 * counted), each locked until the transaction ends. PostgreSQL: an agent
 * new to the table is first inserted uncounted, so that a second replica
 * storing the same agent at the same moment waits for this one's row
 * instead of counting the agent a second time; then every row is locked
 * in key order (`rows` are sorted). SQLite: the write transaction holds
 * the database.
 */
export async function lockAgents(
  q: Queryable,
  dialect: Driver["dialect"],
  rows: Param[][],
): Promise<Map<string, AgentFacts>> {
  const out = new Map<string, AgentFacts>();
  if (dialect === "postgres") {
    await insertRows(
      q,
      AGENT_INSERT,
      rows.map((r) => [...r.slice(0, -1), 0]),
      "ON CONFLICT (agent_key) DO NOTHING",
    );
  }
  const lock = dialect === "postgres" ? " ORDER BY agent_key FOR UPDATE" : "";
  for (let i = 0; i < rows.length; i += CHUNK) {
    const chunk = rows.slice(i, i + CHUNK).map((r) => r[0] as string);
    const found = await q.all(
      `SELECT ${AGENT_FACT_COLUMNS}, counted FROM agents WHERE agent_key IN (${placeholders(chunk)})${lock}`,
      chunk,
    );
    for (const r of found) if (num(r.counted) === 1) out.set(String(r.agent_key), agentFacts(r));
  }
  return out;
}

/** Deletes these agents' content rows, returning them (what the counters hold of them). */
export async function takeContent(
  q: Queryable,
  keys: readonly string[],
): Promise<Map<string, ContentFacts[]>> {
  const out = new Map<string, ContentFacts[]>();
  for (let i = 0; i < keys.length; i += CHUNK) {
    const chunk = keys.slice(i, i + CHUNK);
    const rows = await q.all(
      `DELETE FROM agent_content WHERE agent_key IN (${placeholders(chunk)}) RETURNING ${CONTENT_FACT_COLUMNS}`,
      chunk,
    );
    for (const r of rows) {
      const k = String(r.agent_key);
      out.set(k, [...(out.get(k) ?? []), contentFacts(r)]);
    }
  }
  return out;
}
