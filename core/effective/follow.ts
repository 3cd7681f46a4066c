/**
 * How a running service follows the effective configuration (docs/policy.md,
 * "Services follow the effective configuration"). Built once, used by every
 * service whose settings policy or a feature gate may change at run time —
 * scanning, on-access, IPS, scheduled queries, ML.
 *
 * A service names the keys it reads (`onAccess.*`, `ips.enabled`…), how to
 * pick its settings out of the config, and how to put settings in force.
 * When one of those keys changes, the follower computes the new settings
 * and, if they differ from the ones running, applies them — serialised, so
 * two policy changes never race. If they cannot be applied, the service's
 * previous settings are applied again: a change never leaves the host with
 * less protection than it had. The failure is reported on the health board
 * (amber, source `config:<service>`, code POL_NOT_APPLIED) and as a
 * `config-apply-failed` event, and shows in the follower's status until a
 * later change applies.
 */
import type { AgentConfig } from "../config.ts";
import { describeError } from "../errors.ts";
import type { HealthLevel } from "../health/reasons.ts";
import { log as rootLog } from "../log.ts";

/** What a follower needs from the effective-config service (the real one, or a fake in unit tests). */
export interface EffectiveSource {
  current(): AgentConfig;
  subscribe(patterns: string[], fn: () => void): () => void;
  /** Where followers register their status (`agent status` → `policy.services`). */
  followers?: Map<string, () => FollowerStatus<unknown>>;
}

export interface FollowReporter {
  health?: {
    raise(source: string, level: HealthLevel, code: string, message: string): unknown;
    clear?(source: string, code: string): unknown;
  };
  emit?(type: string, fields: Record<string, unknown>): void;
}

export interface FollowOptions<S> extends FollowReporter {
  /** Service name: the health source is `config:<name>`. */
  name: string;
  /** Config key patterns the service reads (`flags.<name>` is not needed: gates change config keys). */
  keys: string[];
  /** The service's settings in a config; compared as JSON to decide whether anything changed. */
  select(config: AgentConfig): S;
  /**
   * Puts `next` in force. Throws (or rejects) when it cannot — and then is
   * called again with the previous settings (`previous` undefined at start).
   */
  apply(next: S, previous: S | undefined): void | Promise<void>;
}

export interface FollowerStatus<S> {
  keys: string[];
  /** The settings in force (null before the first apply succeeded). */
  applied: S | null;
  appliedAt: string | null;
  /** The last change that could not be applied, until a later one applies. */
  rejected: { settings: S; code: string; reason: string; at: string } | null;
}

const NOT_APPLIED = "POL_NOT_APPLIED";

export class EffectiveFollower<S> {
  private running: S | undefined;
  private appliedAt: string | null = null;
  private rejected: FollowerStatus<S>["rejected"] = null;
  private unsubscribe?: () => void;
  private chain: Promise<void> = Promise.resolve();
  private readonly log;

  constructor(
    private readonly effective: EffectiveSource,
    private readonly o: FollowOptions<S>,
  ) {
    this.log = rootLog.child({ component: o.name });
  }

  /** Applies the current settings (an error here is the service's own start failure), then follows. */
  async start(): Promise<void> {
    const first = this.o.select(this.effective.current());
    await this.o.apply(first, undefined);
    this.running = first;
    this.appliedAt = new Date().toISOString();
    this.unsubscribe = this.effective.subscribe(this.o.keys, () => {
      this.chain = this.chain.then(() => this.follow());
    });
    this.effective.followers?.set(this.o.name, () => this.status());
  }

  /** Stops following; waits for a change in progress. The service stops itself. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.effective.followers?.get(this.o.name)) this.effective.followers.delete(this.o.name);
    await this.chain;
  }

  /** Resolves when every change heard so far has been applied or refused (tests). */
  settled(): Promise<void> {
    return this.chain;
  }

  /** The settings in force. */
  get applied(): S | undefined {
    return this.running;
  }

  status(): FollowerStatus<S> {
    return {
      keys: this.o.keys,
      applied: this.running ?? null,
      appliedAt: this.appliedAt,
      rejected: this.rejected,
    };
  }

  private clearRejection(): void {
    this.rejected = null;
    this.o.health?.clear?.(`config:${this.o.name}`, NOT_APPLIED);
  }

  private async follow(): Promise<void> {
    if (!this.unsubscribe) return;
    const next = this.o.select(this.effective.current());
    if (JSON.stringify(next) === JSON.stringify(this.running)) {
      // Back to the settings in force: a change refused earlier is no longer asked for.
      if (this.rejected) this.clearRejection();
      return;
    }
    const previous = this.running;
    const changed = changedPaths(previous, next);
    try {
      await this.o.apply(next, previous);
      this.running = next;
      this.appliedAt = new Date().toISOString();
      this.clearRejection();
      this.o.emit?.("config-applied", { service: this.o.name, keys: changed });
      this.log.info("new effective settings applied", { keys: changed });
    } catch (e) {
      const d = describeError(e);
      const at = new Date().toISOString();
      this.rejected = { settings: next, code: d.code, reason: d.message, at };
      let restored = "the previous settings stay in force";
      if (previous !== undefined) {
        try {
          await this.o.apply(previous, next);
        } catch (e2) {
          const d2 = describeError(e2);
          this.running = undefined;
          restored = `the previous settings did not start again either (${d2.code}: ${d2.message})`;
        }
      }
      const message = `${this.o.name}: new settings (${changed.join(", ")}) not applied: ${d.code}: ${d.message}; ${restored}`;
      this.o.health?.raise(`config:${this.o.name}`, "amber", NOT_APPLIED, message);
      this.o.emit?.("config-apply-failed", {
        service: this.o.name,
        keys: changed,
        code: d.code,
        reason: d.message,
        restored: this.running !== undefined,
      });
      this.log.warn("new effective settings not applied", { keys: changed, ...d });
    }
  }
}

/** Dotted paths whose values differ between two settings objects (for events and messages). */
export function changedPaths(a: unknown, b: unknown, prefix = ""): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> =>
    !!v && typeof v === "object" && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => changedPaths(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix || "(all)"];
}

/** Shorthand for services: follow the effective config with the agent's health board and events. */
export function followEffective<S>(effective: EffectiveSource, o: FollowOptions<S>): EffectiveFollower<S> {
  return new EffectiveFollower(effective, o);
}
