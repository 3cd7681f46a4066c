/**
 * The health gate's inputs read from the counters (gate-counters.ts) — a
 * few rows per (release, group), whatever the fleet's size — and the two
 * bounded jobs that keep them exact:
 *
 *   sweep  agents whose latest heartbeat fell out of the active window are
 *          taken out of the counters (and, for an earlier cut, put back):
 *          an index range over the agents that changed side since the last
 *          sweep, in chunks, before every read.
 *   mark   the first time the gate asks "reported since S" in a group (a
 *          release's publish time there), the agents that reported since S
 *          move to epoch S: the agents heard from since the publish.
 *
 * Both run under the counters lock exclusively (PostgreSQL: a transaction
 * advisory lock; SQLite: the write transaction); heartbeat batches take it
 * shared, so they run together but never beside a sweep or a mark.
 */
import type { TenantCounts } from "../gate.ts";
import type { GroupHealth } from "../health.ts";
import { CHUNK, placeholders } from "./agent-rows.ts";
import type { Driver, Queryable, Row } from "./driver.ts";
import { num } from "./driver.ts";
import type { AffectedReasons, GateQuery, TenantActivity } from "./fleet-store.ts";
import {
  AGENT_FACT_COLUMNS,
  agentFacts,
  CounterDelta,
  contentOf,
  epochOf,
  FLAG,
  readMarks,
} from "./gate-counters.ts";

/** Agents moved per sweep transaction (the first sweep after an upgrade counts the whole fleet). */
const SWEEP_CHUNK = 5000;
const COUNTERS_LOCK = 0x67617465; // "gate"

/** Heartbeat batches: many at once, none beside a sweep or a mark. */
export async function shareCounters(q: Queryable, dialect: Driver["dialect"]): Promise<void> {
  if (dialect === "postgres") await q.all("SELECT pg_advisory_xact_lock_shared($1)", [COUNTERS_LOCK]);
}

async function ownCounters(q: Queryable, dialect: Driver["dialect"]): Promise<void> {
  if (dialect === "postgres") await q.all("SELECT pg_advisory_xact_lock($1)", [COUNTERS_LOCK]);
}

export class GateAggregates {
  constructor(private readonly db: Driver) {}

  /** Sweeps to `cut` (chunk by chunk), then runs `read` in the transaction that found nothing left to move. */
  private async synced<T>(cut: number, read: (q: Queryable) => Promise<T>): Promise<T> {
    for (;;) {
      const out = await this.db.tx(async (q) => {
        await ownCounters(q, this.db.dialect);
        if ((await sweep(q, cut, SWEEP_CHUNK)) >= SWEEP_CHUNK) return undefined;
        await q.run("DELETE FROM gate_agents WHERE n = 0");
        await q.run("DELETE FROM gate_content WHERE n = 0");
        return { value: await read(q) };
      });
      if (out) return out.value;
    }
  }

  gate(g: GateQuery): Promise<{ health: GroupHealth; reasons: AffectedReasons }> {
    return this.synced(g.now - g.activeWindowMs, async (q) => {
      await ensureMark(q, g.group, g.since);
      return readGate(q, g);
    });
  }

  activeByGroup(activeSince: number): Promise<Map<string, number>> {
    return this.synced(activeSince, async (q) => {
      const rows = await q.all("SELECT grp, SUM(n) AS n FROM gate_agents WHERE n <> 0 GROUP BY grp");
      return new Map(rows.map((r) => [String(r.grp), num(r.n)]));
    });
  }

  activeTenants(activeSince: number): Promise<TenantActivity[]> {
    return this.synced(activeSince, async (q) => {
      const rows = await q.all(
        `SELECT grp, tenant, MAX(vendor) AS vendor, SUM(n) AS n,
                SUM(CASE WHEN enrolled = 1 THEN n ELSE 0 END) AS enrolled
           FROM gate_agents WHERE n <> 0 GROUP BY grp, tenant`,
      );
      return rows.map((r) => ({
        group: String(r.grp),
        tenant: String(r.tenant),
        vendor: num(r.vendor) === 1,
        active: num(r.n),
        enrolled: num(r.enrolled),
      }));
    });
  }
}

/**
 * Counted ⇔ received_at >= cut: takes out agents gone stale, puts back
 * uncounted ones the cut includes again. At most `limit` agents each way;
 * returns the larger number moved (the caller repeats while it is `limit`).
 */
async function sweep(q: Queryable, cut: number, limit: number): Promise<number> {
  const marks = await readMarks(q);
  const delta = new CounterDelta();
  let moved = 0;
  const ways = [
    { set: 0, where: "counted = 1 AND received_at < $1", sign: -1 },
    { set: 1, where: "counted = 0 AND received_at >= $1", sign: 1 },
  ] as const;
  for (const w of ways) {
    // The keys first, in received_at order from the partial index (statistics just after a sweep
    // can make the filter look unselective), then each row by primary key.
    const keys = await q.all(
      `SELECT agent_key FROM agents WHERE ${w.where} ORDER BY received_at LIMIT ${limit}`,
      [cut],
    );
    const rows: Row[] = [];
    for (let i = 0; i < keys.length; i += CHUNK) {
      const chunk = keys.slice(i, i + CHUNK).map((r) => String(r.agent_key));
      rows.push(
        ...(await q.all(
          `UPDATE agents SET counted = ${w.set} WHERE agent_key IN (${placeholders(chunk)}) RETURNING ${AGENT_FACT_COLUMNS}`,
          chunk,
        )),
      );
    }
    moved = Math.max(moved, rows.length);
    const facts = rows.map(agentFacts);
    const content = await contentOf(
      q,
      facts.map((a) => a.key),
    );
    for (const a of facts)
      delta.add(a, content.get(a.key) ?? [], epochOf(marks, a.grp, a.receivedAt), w.sign);
  }
  await delta.apply(q);
  return moved;
}

/**
 * Makes `since` a mark of the group: the counted agents that reported at
 * or after it (and before the next mark) move from the previous epoch to
 * it. Marks at or before 0 need none: every agent reported since then.
 */
async function ensureMark(q: Queryable, grp: string, since: number): Promise<void> {
  if (!(since > 0)) return;
  const marks = (await readMarks(q)).get(grp) ?? [];
  if (marks.includes(since)) return;
  const prev = marks.filter((m) => m < since).at(-1) ?? 0;
  const next = marks.find((m) => m > since) ?? Number.MAX_SAFE_INTEGER;
  const delta = new CounterDelta();
  let after = "";
  for (;;) {
    const rows = await q.all(
      `SELECT ${AGENT_FACT_COLUMNS} FROM agents
        WHERE grp = $1 AND received_at >= $2 AND received_at < $3 AND counted = 1 AND agent_key > $4
        ORDER BY agent_key LIMIT ${SWEEP_CHUNK}`,
      [grp, since, next, after],
    );
    if (rows.length === 0) break;
    const facts = rows.map(agentFacts);
    const content = await contentOf(
      q,
      facts.map((a) => a.key),
    );
    for (const a of facts) {
      delta.add(a, content.get(a.key) ?? [], prev, -1);
      delta.add(a, content.get(a.key) ?? [], since, 1);
    }
    await delta.apply(q);
    after = facts.at(-1)!.key;
  }
  await q.run("INSERT INTO gate_marks (grp, since_ms) VALUES ($1, $2)", [grp, since]);
}

/** The gate's per-tenant counts for one (release, group) from the counter rows. */
async function readGate(
  q: Queryable,
  g: GateQuery,
): Promise<{ health: GroupHealth; reasons: AffectedReasons }> {
  const since = Math.max(0, g.since);
  const vendorOnly = g.vendorOnly ? " AND vendor = 1" : "";
  const agentRows = await q.all(
    `SELECT tenant, vendor, pinned, SUM(n) AS agents, SUM(CASE WHEN epoch >= $2 THEN n ELSE 0 END) AS reporting
       FROM gate_agents WHERE grp = $1 AND n <> 0${vendorOnly}
      GROUP BY tenant, vendor, pinned`,
    [g.group, since],
  );
  const tenants = new Map<string, TenantCounts>();
  for (const r of agentRows) {
    const pinned = String(r.pinned).split(",");
    if (pinned.includes("*") || pinned.includes(g.type)) continue; // G2
    const name = String(r.tenant);
    const t = tenants.get(name) ?? emptyTenant(name);
    t.vendor ||= num(r.vendor) === 1;
    t.agents += num(r.agents);
    t.reporting += num(r.reporting);
    tenants.set(name, t);
  }
  const contentRows = await q.all(
    `SELECT tenant, flags, SUM(n) AS n FROM gate_content
      WHERE grp = $1 AND type = $2 AND version = $3 AND epoch >= $4 AND n <> 0${vendorOnly}
      GROUP BY tenant, flags`,
    [g.group, g.type, g.version, since],
  );
  const reasons: AffectedReasons = {
    markedBad: 0,
    rolledBack: 0,
    crashes: 0,
    handlerFailed: 0,
    healthRed: 0,
  };
  for (const r of contentRows) {
    const t = tenants.get(String(r.tenant));
    if (!t) continue; // as the scan: content of an agent that is not counted in the group
    const f = num(r.flags);
    const n = num(r.n);
    const has = (x: number) => (f & x) !== 0;
    // Every row mentions the version: it runs it, marked it bad or rolled back from it (exposed).
    t.exposed += n;
    if (has(FLAG.runs) || has(FLAG.rolledBack)) t.installed += n;
    if (has(FLAG.runs)) t.adopted += n;
    if (has(FLAG.markedBad | FLAG.rolledBack | FLAG.crashes | FLAG.failed | FLAG.red)) t.affected += n;
    if (has(FLAG.markedBad)) reasons.markedBad += n;
    if (has(FLAG.rolledBack)) reasons.rolledBack += n;
    if (has(FLAG.crashes)) reasons.crashes += n;
    if (has(FLAG.failed)) reasons.handlerFailed += n;
    if (has(FLAG.red)) reasons.healthRed += n;
  }
  return { health: assembleHealth(g.group, tenants), reasons };
}

export function emptyTenant(tenant: string): TenantCounts {
  return {
    tenant,
    vendor: false,
    agents: 0,
    reporting: 0,
    exposed: 0,
    installed: 0,
    adopted: 0,
    affected: 0,
  };
}

/** GroupHealth from per-tenant counts, tenants by name (as every store orders them). */
export function assembleHealth(group: string, tenants: Map<string, TenantCounts>): GroupHealth {
  const all = [...tenants.values()].sort((x, y) => (x.tenant < y.tenant ? -1 : x.tenant > y.tenant ? 1 : 0));
  const sum = (k: keyof Omit<TenantCounts, "tenant" | "vendor">) => all.reduce((n, t) => n + t[k], 0);
  return {
    group,
    agents: sum("agents"),
    reporting: sum("reporting"),
    exposed: sum("exposed"),
    adopted: sum("adopted"),
    affected: sum("affected"),
    installed: sum("installed"),
    tenants: all,
  };
}
