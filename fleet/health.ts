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
 */
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
}

export interface HealthRules {
  threshold: number;
  minSample: number;
  minAdoption: number;
}

export type Verdict = "no-data" | "waiting" | "healthy" | "unhealthy";

export interface Judgement {
  verdict: Verdict;
  /** affected / exposed (0 when nothing is exposed yet). */
  share: number;
  /** The sample this group needs: minSample, or the whole group if smaller. */
  required: number;
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

export function isExposed(agent: FleetAgent, type: string, version: number): boolean {
  const c = agent.content[type];
  if (!c) return false;
  return c.version === version || c.bad.includes(version) || c.rolledBackFrom.includes(version);
}

export function groupHealth(
  agents: Iterable<FleetAgent>,
  q: { type: string; version: number; group: string; since: number; now: number; activeWindowMs: number },
): GroupHealth {
  const h: GroupHealth = { group: q.group, agents: 0, reporting: 0, exposed: 0, adopted: 0, affected: 0 };
  const activeSince = q.now - q.activeWindowMs;
  for (const a of agents) {
    if (a.group !== q.group || a.receivedAt < activeSince) continue;
    h.agents++;
    if (a.receivedAt < q.since) continue;
    h.reporting++;
    if (!isExposed(a, q.type, q.version)) continue;
    h.exposed++;
    if (a.content[q.type]?.version === q.version) h.adopted++;
    if (isAffected(a, q.type, q.version)) h.affected++;
  }
  return h;
}

export function judge(h: GroupHealth, rules: HealthRules): Judgement {
  const required = h.agents === 0 ? rules.minSample : Math.max(1, Math.min(rules.minSample, h.agents));
  const share = h.exposed > 0 ? h.affected / h.exposed : 0;
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  if (h.affected > 0 && h.affected / Math.max(h.exposed, required) > rules.threshold) {
    return {
      verdict: "unhealthy",
      share,
      required,
      reason: `${h.affected} of ${h.exposed} exposed agents in ${h.group} report crashes, rollbacks or health red (${pct(share)}; threshold ${pct(rules.threshold)}, sample ${required})`,
    };
  }
  if (h.agents === 0) {
    return { verdict: "no-data", share, required, reason: `no agent in ${h.group} has reported recently` };
  }
  if (h.exposed < required) {
    return {
      verdict: "waiting",
      share,
      required,
      reason: `${h.exposed} of the ${required} agents needed in ${h.group} have reported on the new version`,
    };
  }
  if (h.exposed / h.agents < rules.minAdoption) {
    return {
      verdict: "waiting",
      share,
      required,
      reason: `adoption in ${h.group} is ${pct(h.exposed / h.agents)}, below ${pct(rules.minAdoption)}`,
    };
  }
  return {
    verdict: "healthy",
    share,
    required,
    reason: `${h.exposed} agents in ${h.group} on the new version, ${h.affected} affected (${pct(share)})`,
  };
}
