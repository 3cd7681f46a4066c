/**
 * Health reasons: the one way any part of the agent says "I am not fine".
 *
 * Health used to be computed only from handlers, hosts, trust and updates.
 * Features added since (IPS self-disable, a degraded sandbox, an automatic
 * rollback, a full state disk, self-help findings) each need to raise a
 * reason of their own, so they share this board instead of growing private
 * flags: `raise(source, level, code, message, { until?, ack? })` and
 * `clear(source, code)`. A reason is keyed by (source, code): raising it again
 * updates its message and keeps `since`. `agent status` lists every reason,
 * `/metrics` exports them, the fleet heartbeat carries the worst.
 *
 * Levels: "red" and "amber" change health; "info" is shown but leaves health
 * as it is (e.g. a self-help finding that points at a KB article).
 * `ack: true` marks a reason that stays until an administrator acknowledges
 * it (`acknowledge(source, code)`), e.g. an automatic rollback.
 */

import { byCodeUnit } from "../compare.ts";
import { metrics } from "../metrics.ts";

export type HealthLevel = "red" | "amber" | "info";

export interface HealthReason {
  /** Who raised it: "ips", "host:scanner", "update", "store", "esh", … */
  source: string;
  level: HealthLevel;
  /** Greppable code, e.g. IPS_SELF_DISABLED, STORE_NO_SPACE. */
  code: string;
  message: string;
  /** When it was first raised (ISO). */
  since: string;
  /** When it was last raised or updated (ISO). */
  updatedAt: string;
  /** Expires on its own at this time (ISO), if set. */
  until?: string;
  /** True when only an administrator's acknowledgement clears it. */
  ack?: boolean;
}

export interface RaiseOptions {
  /** Expiry: a Date, or milliseconds from now. */
  until?: Date | number;
  /** Stays until acknowledged (clear() still removes it when the cause is gone for good). */
  ack?: boolean;
}

export type HealthChange =
  | { kind: "raised"; reason: HealthReason }
  | { kind: "updated"; reason: HealthReason }
  | { kind: "cleared"; reason: HealthReason; by: "clear" | "ack" | "expired" };

const LEVEL_RANK: Record<HealthLevel, number> = { red: 2, amber: 1, info: 0 };

const reasonGauge = metrics.gauge(
  "outpost_health_reason",
  "Active health reasons (1 per reason), by source, code and level",
);

const id = (source: string, code: string) => `${source}\u0000${code}`;

export class HealthBoard {
  private readonly reasons = new Map<string, HealthReason>();
  private readonly listeners = new Set<(c: HealthChange) => void>();

  constructor(private readonly now: () => Date = () => new Date()) {}

  raise(
    source: string,
    level: HealthLevel,
    code: string,
    message: string,
    opts: RaiseOptions = {},
  ): HealthReason {
    const at = this.now();
    const key = id(source, code);
    const prev = this.reasons.get(key);
    const until =
      opts.until === undefined
        ? undefined
        : new Date(
            typeof opts.until === "number" ? at.getTime() + opts.until : opts.until.getTime(),
          ).toISOString();
    const reason: HealthReason = {
      source,
      level,
      code,
      message,
      since: prev?.since ?? at.toISOString(),
      updatedAt: at.toISOString(),
      ...(until ? { until } : {}),
      ...(opts.ack ? { ack: true } : {}),
    };
    if (prev && prev.level !== level) reasonGauge.set({ source, code, level: prev.level }, 0);
    this.reasons.set(key, reason);
    reasonGauge.set({ source, code, level }, 1);
    const same = prev && prev.level === level && prev.message === message && prev.until === reason.until;
    if (!same) this.notify({ kind: prev ? "updated" : "raised", reason });
    return reason;
  }

  /** Removes a reason whose cause is gone. Returns whether one was removed. */
  clear(source: string, code: string): boolean {
    return this.remove(id(source, code), "clear");
  }

  /** Clears every reason of a source (e.g. a feature that was switched off). */
  clearSource(source: string): number {
    let n = 0;
    for (const [k, r] of this.reasons) if (r.source === source && this.remove(k, "clear")) n++;
    return n;
  }

  /** An administrator's acknowledgement: removes an `ack` reason. */
  acknowledge(source: string, code?: string): number {
    let n = 0;
    for (const [k, r] of this.reasons) {
      if (r.source === source && (code === undefined || r.code === code) && this.remove(k, "ack")) n++;
    }
    return n;
  }

  get(source: string, code: string): HealthReason | undefined {
    this.expire();
    return this.reasons.get(id(source, code));
  }

  /** Every active reason, worst first, then oldest first. */
  list(): HealthReason[] {
    this.expire();
    return [...this.reasons.values()].sort(
      (a, b) => LEVEL_RANK[b.level] - LEVEL_RANK[a.level] || byCodeUnit(a.since, b.since),
    );
  }

  /** The worst active level; "green" when nothing red or amber is raised. */
  worst(): "green" | "amber" | "red" {
    let rank = 0;
    for (const r of this.list()) rank = Math.max(rank, LEVEL_RANK[r.level]);
    return rank === 2 ? "red" : rank === 1 ? "amber" : "green";
  }

  onChange(fn: (c: HealthChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private expire(): void {
    const t = this.now().getTime();
    for (const [k, r] of this.reasons) if (r.until && Date.parse(r.until) <= t) this.remove(k, "expired");
  }

  private remove(key: string, by: "clear" | "ack" | "expired"): boolean {
    const r = this.reasons.get(key);
    if (!r) return false;
    this.reasons.delete(key);
    reasonGauge.set({ source: r.source, code: r.code, level: r.level }, 0);
    this.notify({ kind: "cleared", reason: r, by });
    return true;
  }

  private notify(c: HealthChange): void {
    for (const fn of this.listeners) {
      try {
        fn(c);
      } catch {
        // A listener's fault must never stop a health change from being recorded.
      }
    }
  }
}
