/**
 * A host group's CPU limit (RLIMIT_CPU via prlimit, sandbox.ts), issue 12
 * item 17b.
 *
 * Each handler's `limits.cpuSeconds` is the most CPU its own work may need
 * before it is a runaway (its budget), not a share of a pool: the handlers
 * of a group take turns on one event loop, and a runaway one spins on its
 * own. Summing them made the behavior group's limit 48 h (Behavior and
 * ProductRulesFeed each declare 24 h), i.e. no limit at all. So:
 *
 *  C1 the group's limit is its largest handler budget, never the sum;
 *  C2 capped by `hosts.cpuCeilingSeconds` (default 3600): RLIMIT_CPU counts
 *     the process's whole life, and a host that spends that much is ended
 *     (reason cpu-limit) and restarted with a fresh budget — a reload, not
 *     a loss of content. Three such ends in the crash-loop window are a
 *     runaway handler and are handled as a crash loop.
 */
export const DEFAULT_CPU_CEILING_SECONDS = 3600;

/** The group's CPU limit once `handlerSeconds` joins a group whose limit is `current` (0: empty). */
export function withHandlerCpu(current: number, handlerSeconds: number, ceiling: number): number {
  return Math.max(1, Math.min(ceiling, Math.max(current, handlerSeconds)));
}
