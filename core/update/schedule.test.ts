import { describe, expect, test } from "bun:test";
import { nextDelaySeconds, type Timers, UpdateLoop } from "./schedule.ts";

const hourly = { intervalSeconds: 3600, jitter: 0.1, maxBackoffSeconds: 6 * 3600 };

describe("nextDelaySeconds", () => {
  test("healthy: hourly within ±10% jitter, spread across the range", () => {
    let seed = 1;
    const rnd = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const delays = Array.from({ length: 1000 }, () =>
      nextDelaySeconds(hourly, { consecutiveFailures: 0 }, rnd),
    );
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(3240);
    expect(Math.max(...delays)).toBeLessThanOrEqual(3960);
    // Jitter must actually spread a fleet: both tails of the band are used.
    expect(delays.some((d) => d < 3300)).toBe(true);
    expect(delays.some((d) => d > 3900)).toBe(true);
  });

  test("failures back off exponentially from 5 minutes, capped", () => {
    const mid = () => 0.5;
    expect(nextDelaySeconds(hourly, { consecutiveFailures: 1 }, mid)).toBe(300);
    expect(nextDelaySeconds(hourly, { consecutiveFailures: 2 }, mid)).toBe(600);
    expect(nextDelaySeconds(hourly, { consecutiveFailures: 4 }, mid)).toBe(2400);
    expect(nextDelaySeconds(hourly, { consecutiveFailures: 20 }, mid)).toBe(6 * 3600);
  });

  test("Retry-After is a floor", () => {
    expect(nextDelaySeconds(hourly, { consecutiveFailures: 1, retryAfterSeconds: 7200 }, () => 0.5)).toBe(
      7200,
    );
  });
});

class FakeTimers implements Timers {
  t = 0;
  private queue: { at: number; fn: () => void; id: number }[] = [];
  private id = 0;
  setTimeout(fn: () => void, ms: number) {
    const id = ++this.id;
    this.queue.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown) {
    this.queue = this.queue.filter((q) => q.id !== h);
  }
  now() {
    return this.t;
  }
  /** Runs the next timer, returning the delay it had. */
  fireNext(): number {
    this.queue.sort((a, b) => a.at - b.at);
    const next = this.queue.shift();
    if (!next) throw new Error("no timer pending");
    const delay = next.at - this.t;
    this.t = next.at;
    next.fn();
    return delay;
  }
}

describe("UpdateLoop", () => {
  test("runs cycles back to back on schedule, backs off on failure and honours Retry-After", async () => {
    const timers = new FakeTimers();
    const outcomes = [{ ok: true }, { ok: false }, { ok: false, retryAfterSeconds: 9000 }, { ok: true }];
    let failures = 0;
    let cycles = 0;
    let settle: () => void = () => {};
    const loop = new UpdateLoop(
      async () => {
        const o = outcomes[cycles++]!;
        failures = o.ok ? 0 : failures + 1;
        queueMicrotask(() => settle());
        return o;
      },
      hourly,
      () => failures,
      timers,
      () => 0.5,
    );
    const step = async () => {
      const done = new Promise<void>((r) => {
        settle = r;
      });
      const delay = timers.fireNext();
      await done;
      await Bun.sleep(0);
      return delay / 1000;
    };
    loop.start(10);
    expect(await step()).toBe(10); // first run soon after start
    expect(await step()).toBe(3600); // after success: hourly
    expect(await step()).toBe(300); // after one failure: 5 min
    expect(await step()).toBe(9000); // Retry-After beats the 10 min backoff
    expect(cycles).toBe(4);
    await loop.stop();
    expect(loop.nextRunAt).toBeNull();
  });
});
