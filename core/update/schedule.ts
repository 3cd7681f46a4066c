/**
 * When to poll next. Hourly by default with ±10% jitter so a fleet spreads
 * its requests instead of hitting the origin in lock-step; after failures an
 * exponential backoff (starting at 5 minutes, capped) so an outage is
 * retried promptly without a thundering herd; a server's Retry-After is a
 * floor. Pure, so it is tested with a seeded random source.
 */
export interface SchedulePolicy {
  intervalSeconds: number;
  jitter: number;
  maxBackoffSeconds: number;
}

const FIRST_RETRY_SECONDS = 300;

export function nextDelaySeconds(
  policy: SchedulePolicy,
  state: { consecutiveFailures: number; retryAfterSeconds?: number },
  random: () => number = Math.random,
): number {
  const base =
    state.consecutiveFailures === 0
      ? policy.intervalSeconds
      : Math.min(
          policy.maxBackoffSeconds,
          Math.min(policy.intervalSeconds, FIRST_RETRY_SECONDS) * 2 ** (state.consecutiveFailures - 1),
        );
  const jittered = base * (1 + policy.jitter * (2 * random() - 1));
  return Math.max(1, state.retryAfterSeconds ?? 0, jittered);
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // The loop must never be what keeps a stopping agent alive.
    (t as { unref?: () => void }).unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

/** Runs `cycle` forever on the schedule above. One cycle at a time; `stop` waits for the running one. */
export class UpdateLoop {
  private handle: unknown;
  private running: Promise<void> | undefined;
  private stopped = true;
  nextRunAt: number | null = null;

  constructor(
    private readonly cycle: () => Promise<{ ok: boolean; retryAfterSeconds?: number }>,
    private readonly policy: SchedulePolicy,
    private readonly failures: () => number,
    private readonly timers: Timers = realTimers,
    private readonly random: () => number = Math.random,
  ) {}

  /** Starts the loop; the first cycle runs after `initialDelaySeconds` (default: a short jittered delay). */
  start(initialDelaySeconds = 5 + this.random() * 25): void {
    this.stopped = false;
    this.schedule(initialDelaySeconds);
  }

  private schedule(seconds: number): void {
    if (this.stopped) return;
    this.nextRunAt = this.timers.now() + seconds * 1000;
    this.handle = this.timers.setTimeout(() => {
      this.running = this.tick();
    }, seconds * 1000);
  }

  private async tick(): Promise<void> {
    let retryAfterSeconds: number | undefined;
    try {
      retryAfterSeconds = (await this.cycle()).retryAfterSeconds;
    } catch {
      // The cycle reports its own failures; the loop only has to keep going.
    }
    this.schedule(
      nextDelaySeconds(this.policy, { consecutiveFailures: this.failures(), retryAfterSeconds }, this.random),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.handle !== undefined) this.timers.clearTimeout(this.handle);
    this.nextRunAt = null;
    await this.running;
  }
}
