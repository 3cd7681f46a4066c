/**
 * A trust store whose roots are about to expire fails every update the day
 * they do. The agent says so in its log ahead of time, once per cycle, so an
 * administrator (or a self-help rule, examples/ESH) sees it coming.
 */
import type { Trust } from "../crypto/verify.ts";
import type { Logger } from "../log.ts";

export const TRUST_WARN_DAYS = 30;

/** Roots expiring within TRUST_WARN_DAYS of `now` (pure). */
export function expiringRoots(
  trust: Pick<Trust, "roots">,
  now: Date,
): { subject: string; notAfter: string; daysLeft: number }[] {
  const out: { subject: string; notAfter: string; daysLeft: number }[] = [];
  for (const root of trust.roots) {
    const daysLeft = Math.floor((root.notAfter.getTime() - now.getTime()) / 86400_000);
    if (daysLeft < TRUST_WARN_DAYS)
      out.push({ subject: root.subject, notAfter: root.notAfter.toISOString(), daysLeft });
  }
  return out;
}

export function warnIfTrustExpiring(trust: Pick<Trust, "roots">, now: Date, log: Logger): void {
  for (const r of expiringRoots(trust, now)) log.warn("trust store certificate expires soon", r);
}
