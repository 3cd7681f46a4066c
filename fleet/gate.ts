/**
 * The part of the health gate that makes it hard to forge or stall: how much
 * each tenant's agents may weigh in a group's judgement. Pure, over per-tenant
 * aggregates (what a SQL GROUP BY tenant returns), called by judge() in
 * health.ts. Rules (docs/rollout.md, "A gate nobody can forge or stall"):
 *
 *   G1  a vendorOnly group counts only agents of vendor tenants (groupHealth)
 *   G2  agents that hold a type back on purpose (pinned N-1, a pin) are not
 *       counted for that type at all: not active, not exposed (groupHealth)
 *   G3  only agents that installed the release (run it, or rolled back from
 *       it) fill the sample; one that refused it at validation is affected,
 *       but never makes the sample bigger (groupHealth: `installed`)
 *   G4  a customer tenant's agents weigh at most max(maxTenantShare ×
 *       minSample, maxTenantShare / (1 − maxTenantShare) × the other
 *       tenants' agents): 50k idle agents cannot stall adoption, 300 healthy
 *       ones cannot dilute a failure. Scaling is uniform within a tenant, so
 *       a tenant's own shares are unchanged. Vendor tenants are not capped,
 *       nor is a tenant alone in a group (nobody else's judgement to sway).
 *   G5  no single customer tenant decides an abort: the affected share must
 *       exceed the threshold even without the one customer tenant whose
 *       affected agents weigh most. Trouble confined to one tenant holds the
 *       release and says so instead. A group with one tenant is its own judge.
 *   G6  a group short of its sample too long is reported (plan.ts, S8)
 */

export interface TenantCounts {
  tenant: string;
  vendor: boolean;
  agents: number;
  reporting: number;
  exposed: number;
  installed: number;
  adopted: number;
  affected: number;
}

export interface WeightedCounts {
  agents: number;
  reporting: number;
  exposed: number;
  installed: number;
  adopted: number;
  affected: number;
  /** Affected weight without the heaviest customer tenant's (G5). */
  affectedRobust: number;
  /** The customer tenant G5 left out, when it mattered. */
  heaviest: { tenant: string; affected: number } | null;
  /** Tenants whose weight G4 reduced, with the factor. */
  capped: { tenant: string; factor: number }[];
}

/** G4: the weight factor of each tenant (1 = counted in full). */
export function tenantFactors(
  tenants: readonly TenantCounts[],
  rules: { minSample: number; maxTenantShare: number },
): Map<string, number> {
  const s = rules.maxTenantShare;
  const total = tenants.reduce((n, t) => n + t.agents, 0);
  const out = new Map<string, number>();
  for (const t of tenants) {
    if (t.vendor || s >= 1 || t.agents === 0) {
      out.set(t.tenant, 1);
      continue;
    }
    const others = total - t.agents;
    if (others === 0) {
      out.set(t.tenant, 1);
      continue;
    }
    const cap = Math.max(Math.ceil(s * rules.minSample), (s / (1 - s)) * others);
    out.set(t.tenant, Math.min(1, cap / t.agents));
  }
  return out;
}

export function weigh(
  tenants: readonly TenantCounts[],
  rules: { minSample: number; maxTenantShare: number },
): WeightedCounts {
  const f = tenantFactors(tenants, rules);
  const w: WeightedCounts = {
    agents: 0,
    reporting: 0,
    exposed: 0,
    installed: 0,
    adopted: 0,
    affected: 0,
    affectedRobust: 0,
    heaviest: null,
    capped: [],
  };
  for (const t of tenants) {
    const k = f.get(t.tenant) ?? 1;
    if (k < 1) w.capped.push({ tenant: t.tenant, factor: k });
    w.agents += k * t.agents;
    w.reporting += k * t.reporting;
    w.exposed += k * t.exposed;
    w.installed += k * t.installed;
    w.adopted += k * t.adopted;
    w.affected += k * t.affected;
    if (!t.vendor && k * t.affected > (w.heaviest?.affected ?? 0)) {
      w.heaviest = { tenant: t.tenant, affected: k * t.affected };
    }
  }
  if (tenants.filter((t) => t.agents > 0).length < 2) w.heaviest = null;
  w.affectedRobust = w.affected - (w.heaviest?.affected ?? 0);
  return w;
}
