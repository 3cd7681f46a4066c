import { expect, test } from "bun:test";
import { HostWatchdog } from "./watchdog.ts";

/** A clock and timer queue the test advances by hand: no sleeps, no load sensitivity. */
function fakeClock() {
  let now = 0;
  let next: { at: number; fn: () => void } | undefined;
  return {
    now: () => now,
    timers: {
      set(fn: () => void, ms: number) {
        next = { at: now + ms, fn };
        return next;
      },
      clear(t: unknown) {
        if (next === t) next = undefined;
      },
    },
    /** Runs every timer due within `ms`, in order. */
    advance(ms: number) {
      const end = now + ms;
      while (next && next.at <= end) {
        const t = next;
        next = undefined;
        now = t.at;
        t.fn();
      }
      now = end;
    },
  };
}

function rig(opts: { heartbeatMs?: number } = {}) {
  const clock = fakeClock();
  const state = { cpu: 0, rss: 1000, inFlight: 0, beats: 0, answers: true, sampledAt: [] as number[] };
  const w = new HostWatchdog({
    baseMs: 1000,
    maxIdleMs: 30_000,
    heartbeatMs: opts.heartbeatMs ?? 15_000,
    sample: () => ({ cpuSeconds: state.cpu, rssBytes: state.rss }),
    onSample: () => state.sampledAt.push(clock.now()),
    heartbeat: async () => {
      state.beats++;
      return state.answers;
    },
    inFlight: () => state.inFlight,
    now: clock.now,
    timers: clock.timers,
  });
  /** Advances second by second, letting heartbeat answers (promises) settle in between. */
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += 1000) {
      clock.advance(Math.min(1000, ms - t));
      await Promise.resolve();
      await Promise.resolve();
    }
  };
  return { w, clock, state, run };
}

test("a quiet host is sampled ever more rarely, down to one sample per maxIdleMs", () => {
  const { w, clock, state } = rig();
  clock.advance(10 * 60_000);
  // 1+2+4+8+16 s of back-off, then every 30 s: ~24 samples in 10 minutes instead of 600.
  expect(state.sampledAt.length).toBeLessThan(30);
  expect(w.currentIntervalMs).toBe(30_000);
  // No activity since start: no heartbeats at all.
  expect(state.beats).toBe(0);
});

test("traffic brings sampling back to the base rate at once", () => {
  const { w, clock, state } = rig();
  clock.advance(120_000);
  const before = state.sampledAt.length;
  w.poke();
  clock.advance(1000);
  expect(state.sampledAt.length).toBe(before + 1);
  expect(state.sampledAt.at(-1)).toBe(121_000);
});

test("CPU time that moves keeps the host at the base rate (memory cannot grow without it)", () => {
  const { clock, state } = rig();
  clock.advance(120_000);
  // The host works on its own (no IPC): 50 ms of CPU per second for a minute.
  for (let i = 0; i < 60; i++) {
    state.cpu += 0.05;
    clock.advance(1000);
  }
  // One long wait (≤ 30 s) may pass before a sample sees it; from then on, every second.
  expect(state.sampledAt.filter((t) => t > 160_000).length).toBe(20);
});

test("a heartbeat is sent only after activity, and not again once answered", async () => {
  const { w, state, run } = rig();
  await run(60_000);
  expect(state.beats).toBe(0);
  w.poke();
  await run(16_000);
  expect(state.beats).toBe(1);
  // Answered, and quiet again: no further heartbeats, however long.
  await run(10 * 60_000);
  expect(state.beats).toBe(1);
});

test("a host that does not answer keeps being asked (the heartbeat timeout then kills it)", async () => {
  const { w, state, run } = rig();
  state.answers = false;
  await run(5000);
  w.poke();
  await run(61_000);
  // One heartbeat per 15 s for a minute, although the host used no CPU.
  expect(state.beats).toBe(4);
});

test("the CPU our own status requests cost does not count as activity", () => {
  const { clock, state } = rig();
  clock.advance(60_000);
  for (let i = 0; i < 20; i++) {
    state.cpu += 0.01; // one tick per sample: a status answer
    clock.advance(30_000);
  }
  expect(state.beats).toBe(0);
});

test("requests in flight keep the host sampled every base interval", () => {
  const { clock, state } = rig();
  clock.advance(120_000);
  state.inFlight = 1;
  clock.advance(30_000);
  const n = state.sampledAt.length;
  clock.advance(5000);
  expect(state.sampledAt.length).toBe(n + 5);
});

test("stop() ends all sampling", () => {
  const { w, clock, state } = rig();
  w.stop();
  clock.advance(60_000);
  expect(state.sampledAt.length).toBe(0);
});
