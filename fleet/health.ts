/**
 * Fleet health of one release in one group, from the agents' latest
 * heartbeats. Pure: records and the clock in, counts and a verdict out.
 *
 *   active    reported within the active window, from this group
 *   exposed   reported since the group got the version, and runs it, has
 *             marked it bad, or rolled back from it
 *   affected  exposed and rolled back from it, marked it bad, or runs it
 *             with handler crashes, a failed handler or health red
 *
 * A group is unhealthy as soon as affected agents exceed the threshold
 * share of max(exposed, minimum sample): trouble that would cross the line
 * even if every remaining agent of the minimum sample were fine aborts at
 * once instead of waiting for the sample to fill up.
 *
 * Who may count, and how much each tenant weighs, are the gate rules G1–G6
 * (gate.ts): counts are kept per tenant so that no tenant's agents decide.
 */

import type { GateQuery } from "./db/fleet-store.ts";
import { type TenantCounts, weigh } from "./gate.ts";

export interface FleetAgentContent {
  version: number | null;
  bad: number[];
  crashes: number;
  /** Versions this agent rolled back from (recent). */
  rolledBackFrom: number[];
  state: string;
}

export interface FleetAgent {
  id: string;
  tenant: string;
  group: string;
  /** Server clock (ms) when the latest heartbeat arrived. */
  receivedAt: number;
  health: "green" | "amber" | "red";
  content: Record<string, FleetAgentContent>;
  rejected: number;
  /** Signed by an enrolled agent key (false: the unenrolled compatibility mode). */
  enrolled?: boolean;
  /** Enrolled by (or, unenrolled, reporting for) a vendor tenant. */
  vendor?: boolean;
  /** Content types this agent holds back on purpose ("*": cadence pinned-n-1, every type). */
  pinned?: string[];
}

export interface GroupHealth {
  group: string;
  /** Active agents in the group. */
  agents: number;
  /** Active agents that reported since the version reached the group. */
  reporting: number;
  exposed: number;
  /** Exposed agents running the version now. */
  adopted: number;
  affected: number;
  /** Exposed agents that installed the version (G3: only these fill the sample). */
  installed?: number;
  /** The same counts per tenant, for the weight caps (G4, G5); absent: judged unweighted. */
  tenants?: TenantCounts[];
}

export interface HealthRules {
  threshold: number;
  minSample: number;
  minAdoption: number;
  /** G4 (default 1: no cap). */
  maxTenantShare?: number;
}

export type Verdict = "no-data" | "waiting" | "healthy" | "unhealthy";

export interface Judgement {
  verdict: Verdict;
  /** affected / exposed (0 when nothing is exposed yet). */
  share: number;
  /** The sample this group needs: minSample, or the whole group if smaller. */
  required: number;
  /** The (weighted) agents that fill the sample so far (G3, G4). */
  sample: number;
  reason: string;
}

export function isAffected(agent: FleetAgent, type: string, version: number): boolean {
  const c = agent.content[type];
  if (!c) return false;
  if (c.bad.includes(version) || c.rolledBackFrom.includes(version)) return true;
  return (
    c.version === version &&
    (c.crashes > 0 || c.state === "failed" || c.state === "crash-looping" || agent.health === "red")
  );
}

/** G3: ran the version (runs it, or rolled back from it), as opposed to refusing it at validation. */
export function hasInstalled(agent: FleetAgent, type: string, version: number): boolean {
  const c = agent.content[type];
  return !!c && (c.version === version || c.rolledBackFrom.includes(version));
}

/** G2: holds this type back on purpose (pinned N-1 cadence, or a pin). */
export function isPinned(agent: FleetAgent, type: string): boolean {
  return !!agent.pinned && (agent.pinned.includes("*") || agent.pinned.includes(type));
}

export function isExposed(agent: FleetAgent, type: string, version: number): boolean {
  const c = agent.content[type];
  if (!c) return false;
  return c.version === version || c.bad.includes(version) || c.rolledBackFrom.includes(version);
}

export function groupHealth(agents: Iterable<FleetAgent>, q: GateQuery): GroupHealth {
  const h: GroupHealth = {
    group: q.group,
    agents: 0,
    reporting: 0,
    exposed: 0,
    adopted: 0,
    affected: 0,
    installed: 0,
  };
  const byTenant = new Map<string, TenantCounts>();
  const activeSince = q.now - q.activeWindowMs;
  for (const a of agents) {
    if (a.group !== q.group || a.receivedAt < activeSince) continue;
    if (q.vendorOnly && !a.vendor) continue; // G1
    if (isPinned(a, q.type)) continue; // G2
    let t = byTenant.get(a.tenant);
    if (!t) {
      t = {
        tenant: a.tenant,
        vendor: !!a.vendor,
        agents: 0,
        reporting: 0,
        exposed: 0,
        installed: 0,
        adopted: 0,
        affected: 0,
      };
      byTenant.set(a.tenant, t);
    }
    h.agents++;
    t.agents++;
    if (a.receivedAt < q.since) continue;
    h.reporting++;
    t.reporting++;
    if (!isExposed(a, q.type, q.version)) continue;
    h.exposed++;
    t.exposed++;
    if (hasInstalled(a, q.type, q.version)) {
      h.installed = (h.installed ?? 0) + 1;
      t.installed++;
    }
    if (a.content[q.type]?.version === q.version) {
      h.adopted++;
      t.adopted++;
    }
    if (isAffected(a, q.type, q.version)) {
      h.affected++;
      t.affected++;
    }
  }
  // By name, so every store (memory, SQL) gives the same order.
  h.tenants = [...byTenant.values()].sort((x, y) => (x.tenant < y.tenant ? -1 : x.tenant > y.tenant ? 1 : 0));
  return h;
}

export function judge(h: GroupHealth, rules: HealthRules): Judgement {
  const w = h.tenants
    ? weigh(h.tenants, { minSample: rules.minSample, maxTenantShare: rules.maxTenantShare ?? 1 })
    : {
        agents: h.agents,
        exposed: h.exposed,
        installed: h.installed ?? h.exposed,
        affected: h.affected,
        affectedRobust: h.affected,
        heaviest: null,
      };
  const required = w.agents === 0 ? rules.minSample : Math.max(1, Math.min(rules.minSample, w.agents));
  const share = w.exposed > 0 ? w.affected / w.exposed : 0;
  const sample = w.installed;
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const n = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));
  const denominator = Math.max(w.exposed, required);
  if (w.affected > 0 && w.affected / denominator > rules.threshold) {
    if (w.affectedRobust / denominator > rules.threshold) {
      return {
        verdict: "unhealthy",
        share,
        required,
        sample,
        reason: `${n(w.affected)} of ${n(w.exposed)} exposed agents in ${h.group} report crashes, rollbacks or health red (${pct(share)}; threshold ${pct(rules.threshold)}, sample ${n(required)})`,
      };
    }
    // G5: over the line only with one customer tenant's reports — hold and tell, do not abort.
    return {
      verdict: "waiting",
      share,
      required,
      sample,
      reason: `held: ${n(w.affected)} of ${n(w.exposed)} exposed agents in ${h.group} report trouble (${pct(share)}), but without tenant ${w.heaviest?.tenant} alone it is ${pct(w.affectedRobust / denominator)}; one customer tenant does not decide an abort (G5) — look, then abort or promote`,
    };
  }
  if (w.agents === 0) {
    return {
      verdict: "no-data",
      share,
      required,
      sample,
      reason: `no agent in ${h.group} has reported recently`,
    };
  }
  if (w.installed < required) {
    return {
      verdict: "waiting",
      share,
      required,
      sample,
      reason: `${n(w.installed)} of the ${n(required)} agents needed in ${h.group} have reported on the new version`,
    };
  }
  if (w.installed / w.agents < rules.minAdoption) {
    return {
      verdict: "waiting",
      share,
      required,
      sample,
      reason: `adoption in ${h.group} is ${pct(w.installed / w.agents)}, below ${pct(rules.minAdoption)}`,
    };
  }
  return {
    verdict: "healthy",
    share,
    required,
    sample,
    reason: `${n(w.exposed)} agents in ${h.group} on the new version, ${n(w.affected)} affected (${pct(share)})`,
  };
}
