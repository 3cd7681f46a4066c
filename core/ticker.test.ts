import { describe, expect, test } from "bun:test";
import { Ticker, type Timers } from "./ticker.ts";

/** A clock and timers that move only when the test says so. */
function fakeClock(start = 0) {
  let now = start;
  let seq = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  const timers: Timers = {
    set(fn, ms) {
      const id = ++seq;
      pending.set(id, { at: now + ms, fn });
      return id;
    },
    clear(h) {
      pending.delete(h as number);
    },
  };
  return {
    timers,
    now: () => now,
    pending: () => pending.size,
    /** Moves the clock to `to`, firing every timer due on the way, in order. */
    advanceTo(to: number) {
      for (;;) {
        let next: [number, { at: number; fn: () => void }] | undefined;
        for (const e of pending) if (e[1].at <= to && (!next || e[1].at < next[1].at)) next = e;
        if (!next) break;
        pending.delete(next[0]);
        now = next[1].at;
        next[1].fn();
      }
      now = to;
    },
  };
}

describe("Ticker: periodic jobs share wake-ups", () => {
  test("periodic jobs started at different moments of a second meet on the grid: one wake-up a second", () => {
    const c = fakeClock(10_000);
    const t = new Ticker({ now: c.now, timers: c.timers });
    const runs = { a: [] as number[], b: [] as number[], c: [] as number[] };
    c.advanceTo(10_130);
    t.every(1000, () => runs.a.push(c.now()));
    c.advanceTo(10_470);
    t.every(1000, () => runs.b.push(c.now()));
    c.advanceTo(10_910);
    t.every(2000, () => runs.c.push(c.now()));
    c.advanceTo(20_500);
    // a: first at 11 s (10.13 + 1 s, at most 250 ms early); b: 10.47 + 0.75 → 12 s; c: 10.91 + 1.5 → 13 s.
    expect(runs.a).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20].map((s) => s * 1000));
    expect(runs.b).toEqual([12, 13, 14, 15, 16, 17, 18, 19, 20].map((s) => s * 1000));
    expect(runs.c).toEqual([13, 15, 17, 19].map((s) => s * 1000));
    // Setting them off with their own setInterval would have woken the process 10 + 10 + 5 times.
    expect(t.wakeups).toBe(10);
  });

  test("no job runs more than its slack early or more than one grid step late", () => {
    const c = fakeClock(0);
    const t = new Ticker({ now: c.now, timers: c.timers });
    for (let start = 0; start < 3000; start += 37) {
      for (const ms of [1000, 1500, 4000, 30_000]) {
        c.advanceTo(Math.max(c.now(), start));
        const armedAt = c.now();
        let ranAt = -1;
        t.set(() => {
          ranAt = c.now();
        }, ms);
        c.advanceTo(armedAt + ms + 1000);
        expect(ranAt).toBeGreaterThanOrEqual(armedAt + ms - Math.min(250, ms / 4));
        expect(ranAt).toBeLessThan(armedAt + ms + 1000);
        expect(ranAt % 1000).toBe(0);
      }
    }
  });

  test("a job that re-arms with its own period stays on the grid: one run per period, no drift", () => {
    const c = fakeClock(5_321);
    const t = new Ticker({ now: c.now, timers: c.timers });
    const runs: number[] = [];
    const stop = t.every(1000, () => {
      runs.push(c.now());
    });
    c.advanceTo(15_500);
    expect(runs).toEqual(
      [7_000, 8_000, 9_000, 10_000, 11_000, 12_000, 13_000, 14_000, 15_000].slice(0, runs.length),
    );
    expect(runs.length).toBe(9);
    stop();
    c.advanceTo(20_000);
    expect(runs.length).toBe(9);
    expect(t.pending).toBe(0);
    expect(c.pending()).toBe(0);
  });

  test("delays shorter than a grid step keep their own timer, unrounded", () => {
    const c = fakeClock(100);
    const t = new Ticker({ now: c.now, timers: c.timers });
    let at = -1;
    t.set(() => {
      at = c.now();
    }, 40);
    c.advanceTo(1000);
    expect(at).toBe(140);
    const h = t.set(() => {
      at = -2;
    }, 10);
    t.clear(h);
    c.advanceTo(2000);
    expect(at).toBe(140);
  });

  test("a cleared job does not run; clearing the last one leaves no timer behind", () => {
    const c = fakeClock(0);
    const t = new Ticker({ now: c.now, timers: c.timers });
    let ran = 0;
    const a = t.set(() => ran++, 1000);
    const b = t.set(() => ran++, 3000);
    t.clear(a);
    c.advanceTo(1500);
    expect(ran).toBe(0);
    t.clear(b);
    expect(c.pending()).toBe(0);
    c.advanceTo(5000);
    expect(ran).toBe(0);
  });

  test("a job that throws costs neither the other jobs their run nor its own next one", () => {
    const c = fakeClock(0);
    const t = new Ticker({ now: c.now, timers: c.timers });
    let good = 0;
    let bad = 0;
    t.every(1000, () => {
      bad++;
      throw new Error("boom");
    });
    t.every(1000, () => good++);
    c.advanceTo(3000);
    expect(bad).toBe(3);
    expect(good).toBe(3);
    expect(t.wakeups).toBe(3);
  });

  test("real timers: due jobs run from the unref'd timer, together", async () => {
    const t = new Ticker({ gridMs: 200, maxSlackMs: 50 });
    const at: number[] = [];
    const done = Promise.withResolvers<void>();
    const hold = setTimeout(() => {}, 5000); // the ticker's own timer is unref'd: keep the test alive
    const armed = performance.now();
    t.set(() => at.push(performance.now()), 200);
    t.set(() => {
      at.push(performance.now());
      done.resolve();
    }, 200);
    await done.promise;
    clearTimeout(hold);
    expect(at.length).toBe(2);
    expect(at[0]! - armed).toBeGreaterThanOrEqual(149);
    expect(t.wakeups).toBe(1);
  }, 5000);
});
