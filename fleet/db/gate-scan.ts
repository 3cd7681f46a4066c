/**
 * The gate's inputs computed from scratch: two SQL queries per (release,
 * group) over the index ranges (group, received_at) and (group, type,
 * received_at), grouped by tenant — every active agent of the group is
 * read. This was the planner's query before the counters
 * (gate-aggregates.ts); it stays as their reference (the tests hold the
 * counters to it) and for `bench/fleet-scale.ts`'s before/after figure.
 *
 * G1 vendorOnly counts vendor rows only; G2 agents pinning the type are
 * left out of every count; G3 `installed` (runs V or rolled back from it)
 * is what fills the sample.
 */
import type { TenantCounts } from "../gate.ts";
import type { GroupHealth } from "../health.ts";
import { num, type Queryable } from "./driver.ts";
import type { AffectedReasons, GateQuery } from "./fleet-store.ts";
import { assembleHealth } from "./gate-aggregates.ts";

export async function scanGate(
  db: Queryable,
  g: GateQuery,
): Promise<{ health: GroupHealth; reasons: AffectedReasons }> {
  const activeSince = g.now - g.activeWindowMs;
  const reportingSince = Math.max(activeSince, g.since);
  const vendorOnly = g.vendorOnly ? " AND vendor = 1" : "";
  const perTenant = await db.all(
    `SELECT tenant, MAX(vendor) AS vendor, COUNT(*) AS agents,
            SUM(CASE WHEN received_at >= $3 THEN 1 ELSE 0 END) AS reporting
       FROM agents
      WHERE grp = $1 AND received_at >= $2${vendorOnly}
        AND pinned NOT LIKE '%,*,%' AND pinned NOT LIKE $4
      GROUP BY tenant ORDER BY tenant`,
    [g.group, activeSince, reportingSince, `%,${g.type},%`],
  );
  const v = g.version;
  const mark = `%,${v},%`;
  // Affected ⊆ exposed: marked bad, rolled back from, or running V with crashes, a failed handler or red.
  const contentPerTenant = await db.all(
    `SELECT tenant,
       SUM(CASE WHEN version = $3 OR bad LIKE $5 OR rolled_back_from LIKE $5 THEN 1 ELSE 0 END) AS exposed,
       SUM(CASE WHEN version = $3 OR rolled_back_from LIKE $5 THEN 1 ELSE 0 END) AS installed,
       SUM(CASE WHEN version = $3 THEN 1 ELSE 0 END) AS adopted,
       SUM(CASE WHEN bad LIKE $5 OR rolled_back_from LIKE $5 OR (version = $3 AND (crashes > 0
             OR state IN ('failed', 'crash-looping') OR health = 'red')) THEN 1 ELSE 0 END) AS affected,
       SUM(CASE WHEN bad LIKE $5 THEN 1 ELSE 0 END) AS marked_bad,
       SUM(CASE WHEN rolled_back_from LIKE $5 THEN 1 ELSE 0 END) AS rolled_back,
       SUM(CASE WHEN version = $3 AND crashes > 0 THEN 1 ELSE 0 END) AS crashes,
       SUM(CASE WHEN version = $3 AND state IN ('failed', 'crash-looping') THEN 1 ELSE 0 END) AS failed,
       SUM(CASE WHEN version = $3 AND health = 'red' THEN 1 ELSE 0 END) AS red
     FROM agent_content
    WHERE grp = $1 AND type = $2 AND received_at >= $4 AND pinned = 0${vendorOnly}
    GROUP BY tenant`,
    [g.group, g.type, v, reportingSince, mark],
  );
  const tenants = new Map<string, TenantCounts>();
  for (const r of perTenant) {
    tenants.set(String(r.tenant), {
      tenant: String(r.tenant),
      vendor: num(r.vendor) === 1,
      agents: num(r.agents),
      reporting: num(r.reporting),
      exposed: 0,
      installed: 0,
      adopted: 0,
      affected: 0,
    });
  }
  const reasons: AffectedReasons = {
    markedBad: 0,
    rolledBack: 0,
    crashes: 0,
    handlerFailed: 0,
    healthRed: 0,
  };
  for (const c of contentPerTenant) {
    // A content row whose agent row is not active (cannot happen: both carry the same received_at) is skipped.
    const t = tenants.get(String(c.tenant));
    if (!t) continue;
    t.exposed = num(c.exposed);
    t.installed = num(c.installed);
    t.adopted = num(c.adopted);
    t.affected = num(c.affected);
    reasons.markedBad += num(c.marked_bad);
    reasons.rolledBack += num(c.rolled_back);
    reasons.crashes += num(c.crashes);
    reasons.handlerFailed += num(c.failed);
    reasons.healthRed += num(c.red);
  }
  return { health: assembleHealth(g.group, tenants), reasons };
}
