/**
 * What one agent counts for in the gate's counters (005_gate_counters.sql),
 * and moving it between counter rows. Pure except `apply`.
 *
 * An agent that is counted (`agents.counted = 1`) adds 1 to one row of
 * `gate_agents` — its group, tenant, vendor, enrolled, pinned list and
 * epoch — and, for each content type it does not pin, 1 to one row of
 * `gate_content` per version that row mentions (runs, marked bad, rolled
 * back from), with what it says of that version as flags. The gate for a
 * (group, type, version, since) then sums a handful of rows: exactly the
 * counts the from-scratch scan (gate-scan.ts) computes over every agent.
 *
 * The epoch stands for "reported since": the latest mark of the group at or
 * before the agent's received_at. Marks are the `since` times the gate is
 * asked for (a release's publish time in a group); received_at >= mark
 * is then epoch >= mark, for every mark.
 */
import { insertRows, num, type Param, type Queryable, type Row } from "./driver.ts";

/** What an agent row contributes by (its columns in `agents`). */
export interface AgentFacts {
  key: string;
  grp: string;
  tenant: string;
  vendor: number;
  enrolled: number;
  /** ",*," (pinned-n-1), ",T1,T2," or "": as stored in agents.pinned. */
  pinned: string;
  receivedAt: number;
}

/** What one content row contributes by (its columns in `agent_content`). */
export interface ContentFacts {
  type: string;
  version: number | null;
  state: string;
  crashes: number;
  bad: string;
  rolledBackFrom: string;
  health: string;
  /** 1: the agent holds this type back (G2): it counts for nothing of this type. */
  pinned: number;
}

export const FLAG = {
  runs: 1,
  markedBad: 2,
  rolledBack: 4,
  crashes: 8,
  failed: 16,
  red: 32,
} as const;

export const AGENT_FACT_COLUMNS = "agent_key, grp, tenant, vendor, enrolled, pinned, received_at";
export const CONTENT_FACT_COLUMNS =
  "agent_key, type, version, state, crashes, bad, rolled_back_from, health, pinned";

export function agentFacts(r: Row): AgentFacts {
  return {
    key: String(r.agent_key),
    grp: String(r.grp),
    tenant: String(r.tenant),
    vendor: num(r.vendor),
    enrolled: num(r.enrolled),
    pinned: String(r.pinned ?? ""),
    receivedAt: num(r.received_at),
  };
}

export function contentFacts(r: Row): ContentFacts {
  return {
    type: String(r.type),
    version: r.version === null || r.version === undefined ? null : num(r.version),
    state: String(r.state),
    crashes: num(r.crashes),
    bad: String(r.bad ?? ""),
    rolledBackFrom: String(r.rolled_back_from ?? ""),
    health: String(r.health),
    pinned: num(r.pinned),
  };
}

const versions = (list: string) => list.split(",").filter(Boolean).map(Number);

/** The flags of each version one content row mentions. */
export function versionFlags(c: ContentFacts): Map<number, number> {
  const out = new Map<number, number>();
  const set = (v: number, f: number) => out.set(v, (out.get(v) ?? 0) | f);
  for (const v of versions(c.bad)) set(v, FLAG.markedBad);
  for (const v of versions(c.rolledBackFrom)) set(v, FLAG.rolledBack);
  if (c.version !== null) {
    let f: number = FLAG.runs;
    if (c.crashes > 0) f |= FLAG.crashes;
    if (c.state === "failed" || c.state === "crash-looping") f |= FLAG.failed;
    if (c.health === "red") f |= FLAG.red;
    set(c.version, f);
  }
  return out;
}

/** Marks per group, ascending. */
export type Marks = Map<string, number[]>;

export async function readMarks(q: Queryable): Promise<Marks> {
  const out: Marks = new Map();
  for (const r of await q.all("SELECT grp, since_ms FROM gate_marks ORDER BY grp, since_ms")) {
    const g = String(r.grp);
    out.set(g, [...(out.get(g) ?? []), num(r.since_ms)]);
  }
  return out;
}

/** The latest mark of the group at or before `receivedAt` (0: none). */
export function epochOf(marks: Marks, grp: string, receivedAt: number): number {
  let e = 0;
  for (const m of marks.get(grp) ?? []) {
    if (m > receivedAt) break;
    e = m;
  }
  return e;
}

interface Bucket {
  row: Param[];
  n: number;
}

/**
 * Changes to the counters, summed per row before they are written: an
 * agent whose heartbeat changed nothing it counts for adds −1 and +1 to
 * the same row, and nothing is written.
 */
export class CounterDelta {
  private readonly agents = new Map<string, Bucket>();
  private readonly content = new Map<string, Bucket>();

  /** Adds (sign 1) or takes away (−1) what one agent counts for, at `epoch`. */
  add(a: AgentFacts, content: readonly ContentFacts[], epoch: number, sign: 1 | -1): void {
    bump(this.agents, [a.grp, a.tenant, a.vendor, a.enrolled, a.pinned, epoch], sign);
    for (const c of content) {
      if (c.pinned) continue; // G2: not counted for this type at all
      for (const [v, flags] of versionFlags(c)) {
        bump(this.content, [a.grp, c.type, v, a.tenant, a.vendor, epoch, flags], sign);
      }
    }
  }

  /** Rows whose count changes. */
  get size(): number {
    let n = 0;
    for (const m of [this.agents, this.content]) for (const b of m.values()) if (b.n !== 0) n++;
    return n;
  }

  /**
   * Writes the changes, rows in key order: two replicas' transactions lock
   * shared counter rows in the same order, so they wait for each other
   * instead of deadlocking.
   */
  async apply(q: Queryable): Promise<void> {
    await insertRows(
      q,
      "INSERT INTO gate_agents (grp, tenant, vendor, enrolled, pinned, epoch, n) VALUES",
      changed(this.agents),
      "ON CONFLICT (grp, tenant, vendor, enrolled, pinned, epoch) DO UPDATE SET n = gate_agents.n + excluded.n",
    );
    await insertRows(
      q,
      "INSERT INTO gate_content (grp, type, version, tenant, vendor, epoch, flags, n) VALUES",
      changed(this.content),
      "ON CONFLICT (grp, type, version, tenant, vendor, epoch, flags) DO UPDATE SET n = gate_content.n + excluded.n",
    );
    this.agents.clear();
    this.content.clear();
  }
}

function bump(m: Map<string, Bucket>, row: Param[], by: number): void {
  const k = JSON.stringify(row);
  const b = m.get(k);
  if (b) b.n += by;
  else m.set(k, { row, n: by });
}

function changed(m: Map<string, Bucket>): Param[][] {
  return [...m.entries()]
    .filter(([, b]) => b.n !== 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, b]) => [...b.row, b.n]);
}

/** The content rows of some agents, by agent key. */
export async function contentOf(q: Queryable, keys: readonly string[]): Promise<Map<string, ContentFacts[]>> {
  const out = new Map<string, ContentFacts[]>();
  for (let i = 0; i < keys.length; i += 500) {
    const chunk = keys.slice(i, i + 500);
    const rows = await q.all(
      `SELECT ${CONTENT_FACT_COLUMNS} FROM agent_content WHERE agent_key IN (${chunk.map((_, j) => `$${j + 1}`).join(",")})`,
      chunk,
    );
    for (const r of rows) {
      const k = String(r.agent_key);
      out.set(k, [...(out.get(k) ?? []), contentFacts(r)]);
    }
  }
  return out;
}
