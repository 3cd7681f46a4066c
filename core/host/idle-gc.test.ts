import { describe, expect, test } from "bun:test";
import { CodeRelease } from "../code-release.ts";
import { IdleGc } from "./idle-gc.ts";

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(5);
  return cond();
}

test("one collection after the work stops, none while it goes on, none when idle", async () => {
  let n = 0;
  const gc = new IdleGc({ quietMs: 40, minIntervalMs: 0, collect: () => n++ });
  for (let i = 0; i < 5; i++) gc.touch();
  expect(n).toBe(0);
  expect(await until(() => n === 1, 5000)).toBe(true);
  // Nothing touched it since: no further collections (no timer left behind).
  await Bun.sleep(100);
  expect(n).toBe(1);
  gc.stop();
});

test("touches spread over time keep putting the collection off until quietMs after the last", async () => {
  let clock = 0;
  const at: number[] = [];
  const gc = new IdleGc({ quietMs: 40, minIntervalMs: 0, collect: () => at.push(clock), now: () => clock });
  // A touch every 10 ms of fake time while real timers fire: each one that fires mid-stream finds a
  // later touch and must wait again (the clock never shows 40 ms of quiet until the touches stop).
  for (let i = 0; i < 20; i++) {
    gc.touch();
    clock += 10;
    await Bun.sleep(10);
  }
  expect(at).toEqual([]);
  const last = clock - 10;
  clock = last + 40;
  expect(await until(() => at.length === 1, 5000)).toBe(true);
  expect(at[0]).toBe(last + 40);
  expect(gc.collections).toBe(1);
  gc.stop();
});

test("bursts closer than minIntervalMs share one collection", async () => {
  let n = 0;
  let clock = 0;
  const gc = new IdleGc({
    quietMs: 10,
    minIntervalMs: 60_000,
    collect: () => n++,
    now: () => clock,
  });
  gc.touch();
  expect(await until(() => n === 1, 5000)).toBe(true);
  clock += 1000;
  gc.touch();
  // The next one waits for the rest of the minute, not 10 ms.
  await Bun.sleep(100);
  expect(n).toBe(1);
  gc.stop();
});

test("work that never pauses still gets its collection, maxDelayMs after the touch that armed it", async () => {
  let n = 0;
  let clock = 0;
  const idle: boolean[] = [];
  const gc = new IdleGc({
    quietMs: 1000,
    minIntervalMs: 0,
    collect: (i) => {
      n++;
      idle.push(i);
    },
    now: () => clock,
    maxDelayMs: 50,
  });
  // A touch every 10 ms of fake time: never quiet for 1 s, so only the deadline can fire.
  const started = Date.now();
  while (n === 0 && Date.now() - started < 5000) {
    gc.touch();
    clock += 10;
    await Bun.sleep(5);
  }
  expect(n).toBe(1);
  // Fired by the deadline (50 ms of fake time after the first touch), not by a quiet second.
  expect(clock).toBeLessThan(1000);
  // A busy process keeps its compiled code: no shrink on a deadline collection.
  expect(idle).toEqual([false]);
  gc.stop();
});

test("a collection after quietMs of nothing is an idle one (it may shrink); a touch just before is not", async () => {
  let clock = 0;
  const idle: boolean[] = [];
  const gc = new IdleGc({
    quietMs: 20,
    minIntervalMs: 0,
    collect: (i) => idle.push(i),
    now: () => clock,
  });
  gc.touch();
  clock += 20;
  expect(await until(() => idle.length === 1, 5000)).toBe(true);
  // soon() right after a touch (a content switch while requests arrive): collected, not shrunk.
  gc.touch();
  gc.soon();
  clock += 5;
  expect(await until(() => idle.length === 2, 5000)).toBe(true);
  expect(idle).toEqual([true, false]);
  gc.stop();
});

test("soon(): a content switch gets its collection within quietMs even right after the last one", async () => {
  let n = 0;
  let clock = 0;
  const gc = new IdleGc({
    quietMs: 20,
    minIntervalMs: 60_000,
    collect: () => n++,
    now: () => clock,
  });
  gc.touch();
  expect(await until(() => n === 1, 5000)).toBe(true);
  clock += 1000;
  // touch() alone would wait out the rest of the minute…
  gc.touch();
  await Bun.sleep(100);
  expect(n).toBe(1);
  // …soon() does not, and later touches cannot push it back.
  gc.soon();
  gc.touch();
  expect(await until(() => n === 2, 5000)).toBe(true);
  gc.stop();
});

test("a busy collection is followed by an idle one once the process stays quiet (and only one)", async () => {
  let clock = 0;
  const idle: boolean[] = [];
  const gc = new IdleGc({
    quietMs: 20,
    minIntervalMs: 30,
    collect: (i) => idle.push(i),
    now: () => clock,
    maxDelayMs: 10,
  });
  // Work right up to the deadline collection, then nothing: no touch will come to arm another.
  gc.touch();
  clock += 5;
  gc.touch();
  expect(await until(() => idle.length === 1, 5000)).toBe(true);
  expect(idle).toEqual([false]);
  clock += 100;
  expect(await until(() => idle.length === 2, 5000)).toBe(true);
  expect(idle).toEqual([false, true]);
  // Quiet since: no further collections.
  await Bun.sleep(150);
  expect(idle).toEqual([false, true]);
  gc.stop();
});

test("the follow-up of a busy collection that is busy again does not chain", async () => {
  const idle: boolean[] = [];
  // A clock that never moves: every collection looks busy.
  const gc = new IdleGc({
    quietMs: 20,
    minIntervalMs: 0,
    collect: (i) => idle.push(i),
    now: () => 0,
    maxDelayMs: 10,
  });
  gc.touch();
  expect(await until(() => idle.length === 2, 5000)).toBe(true);
  await Bun.sleep(150);
  expect(idle).toEqual([false, false]);
  gc.stop();
});

describe("the floor grows while traffic stays light, and snaps back on work", () => {
  /** A fake clock and an IdleGc on it whose collections are counted; `round` runs one light round. */
  function lightGc() {
    const c = { clock: 0, idle: [] as boolean[], releases: 0 };
    const pages = new CodeRelease({
      quietMs: 10,
      minGapMs: 0,
      release: () => c.releases++,
      now: () => c.clock,
    });
    const gc = new IdleGc({
      quietMs: 10,
      minIntervalMs: 40,
      maxIntervalMs: 160,
      lightTouches: 1,
      collect: (i) => c.idle.push(i),
      codeRelease: pages,
      now: () => c.clock,
    });
    /** One touch once the floor has run out, then quiet: the collection it arms. */
    const round = async () => {
      const before = c.idle.length;
      c.clock += gc.intervalMs;
      gc.touch();
      c.clock += 10;
      expect(await until(() => c.idle.length === before + 1, 5000)).toBe(true);
    };
    return { c, gc, round, pages };
  }

  test("one touch per floor between idle collections doubles it, up to maxIntervalMs", async () => {
    const { c, gc, round, pages } = lightGc();
    await round();
    // The first collection has no window before it to judge: the floor stays.
    expect(gc.intervalMs).toBe(40);
    const floors: number[] = [];
    for (let i = 0; i < 4; i++) {
      await round();
      floors.push(gc.intervalMs);
    }
    expect(floors).toEqual([80, 160, 160, 160]);
    expect(c.idle.every((i) => i)).toBe(true);
    gc.stop();
    pages.stop();
  });

  test("a burst of touches brings the short floor back at once, not after the long one", async () => {
    const { c, gc, round, pages } = lightGc();
    await round();
    await round();
    await round();
    expect(gc.intervalMs).toBe(160);
    const n = c.idle.length;
    const lastAt = c.clock;
    // Three touches within the first 40 ms of a 160 ms floor: more than one per minIntervalMs.
    for (let i = 0; i < 3; i++) gc.touch();
    expect(gc.intervalMs).toBe(40);
    // The collection now comes at lastAt + 40, not lastAt + 160.
    c.clock = lastAt + 40 + 10;
    gc.touch();
    c.clock += 10;
    expect(await until(() => c.idle.length === n + 1, 5000)).toBe(true);
    expect(c.clock).toBeLessThan(lastAt + 160);
    // And the window it closes was busy: the floor stays short.
    expect(gc.intervalMs).toBe(40);
    gc.stop();
    pages.stop();
  });

  test("a quiet spell gives the code pages back whatever the floor, and again after an idle collection", async () => {
    const { c, gc, round, pages } = lightGc();
    await round();
    // The collection's aftermath: the pages go once more when it has been quiet for quietMs.
    const afterFirst = c.releases;
    c.clock += 10;
    expect(await until(() => c.releases === afterFirst + 1, 5000)).toBe(true);
    await round();
    expect(gc.intervalMs).toBe(80);
    c.clock += 10;
    expect(await until(() => pages.pending === false, 5000)).toBe(true);
    const n = c.idle.length;
    const released = c.releases;
    // A touch 5 ms into an 80 ms floor, then quiet: the pages go after quietMs, the collection waits.
    c.clock += 5;
    gc.touch();
    c.clock += 10;
    expect(await until(() => c.releases === released + 1, 5000)).toBe(true);
    expect(c.idle.length).toBe(n);
    // One release per quiet spell: nothing more while nothing happens.
    await Bun.sleep(50);
    expect(c.releases).toBe(released + 1);
    gc.stop();
    pages.stop();
  });

  test("soon() (a content switch dropped its payload) resets the floor", async () => {
    const { c, gc, round, pages } = lightGc();
    await round();
    await round();
    expect(gc.intervalMs).toBe(80);
    const n = c.idle.length;
    c.clock += 5;
    gc.soon();
    expect(gc.intervalMs).toBe(40);
    c.clock += 10;
    expect(await until(() => c.idle.length === n + 1, 5000)).toBe(true);
    expect(gc.intervalMs).toBe(40);
    gc.stop();
    pages.stop();
  });

  test("a deadline collection of busy work resets it", async () => {
    const c = { clock: 0, idle: [] as boolean[] };
    const gc = new IdleGc({
      quietMs: 1000,
      minIntervalMs: 40,
      maxIntervalMs: 160,
      lightTouches: 1000,
      maxDelayMs: 20,
      collect: (i) => c.idle.push(i),
      now: () => c.clock,
    });
    // Two idle collections of light traffic: the floor doubles once.
    for (let i = 0; i < 2; i++) {
      const n = c.idle.length;
      c.clock += gc.intervalMs;
      gc.touch();
      c.clock += 1000;
      expect(await until(() => c.idle.length === n + 1, 5000)).toBe(true);
    }
    expect(gc.intervalMs).toBe(80);
    // Then work that never pauses for quietMs: only the deadline fires, and the floor is short again.
    const n = c.idle.length;
    const started = Date.now();
    while (c.idle.length === n && Date.now() - started < 5000) {
      gc.touch();
      c.clock += 10;
      await Bun.sleep(2);
    }
    expect(c.idle.at(-1)).toBe(false);
    expect(gc.intervalMs).toBe(40);
    gc.stop();
  });
});

describe("collections are weighed: one that gives nothing back is not repeated at the short floor", () => {
  /** Periodic work (ten touches per round: more than lightTouches per floor, even stretched) on a heap the test sets. */
  function periodicGc() {
    const c = { clock: 0, idle: [] as boolean[], heap: 10 << 20, garbage: 0 };
    const gc = new IdleGc({
      quietMs: 10,
      minIntervalMs: 40,
      maxIntervalMs: 160,
      lightTouches: 1,
      minYieldBytes: 1 << 20,
      collect: (i) => {
        c.idle.push(i);
        c.heap -= c.garbage;
        c.garbage = 0;
      },
      heapBytes: () => c.heap,
      now: () => c.clock,
    });
    /** The floor runs out, ten requests come, then quiet: the collection they arm. */
    const round = async (garbage = 0) => {
      const before = c.idle.length;
      c.clock += gc.intervalMs;
      for (let i = 0; i < 10; i++) gc.touch();
      c.heap += garbage;
      c.garbage = garbage;
      c.clock += 10;
      expect(await until(() => c.idle.length === before + 1, 5000)).toBe(true);
    };
    return { c, gc, round };
  }

  test("idle collections that give less than minYieldBytes back double the floor, whatever the touches", async () => {
    const { c, gc, round } = periodicGc();
    await round();
    // The first has no window before it to judge.
    expect(gc.intervalMs).toBe(40);
    const floors: number[] = [];
    for (let i = 0; i < 4; i++) {
      await round(64 * 1024);
      floors.push(gc.intervalMs);
    }
    expect(floors).toEqual([80, 160, 160, 160]);
    expect(c.idle.every((i) => i)).toBe(true);
    // The touches of the next round leave the stretched floor as it is: they are what was found worthless.
    c.clock += 5;
    for (let i = 0; i < 5; i++) gc.touch();
    expect(gc.intervalMs).toBe(160);
    gc.stop();
  });

  test("a collection that gives memory back (per floor's worth of time) brings the short floor back; so does soon()", async () => {
    const { gc, round } = periodicGc();
    await round();
    await round();
    await round();
    expect(gc.intervalMs).toBe(160);
    // 2 MiB over four floors' worth of time is under 1 MiB per floor: still not worth the short floor.
    await round(2 << 20);
    expect(gc.intervalMs).toBe(160);
    await round(8 << 20);
    expect(gc.intervalMs).toBe(40);
    await round();
    expect(gc.intervalMs).toBe(80);
    gc.soon();
    expect(gc.intervalMs).toBe(40);
    gc.stop();
  });

  test("without a way to weigh the heap (a custom collection), touches alone decide, as before", async () => {
    let clock = 0;
    const idle: boolean[] = [];
    const gc = new IdleGc({
      quietMs: 10,
      minIntervalMs: 40,
      maxIntervalMs: 160,
      lightTouches: 1,
      collect: (i) => idle.push(i),
      now: () => clock,
    });
    for (let r = 0; r < 4; r++) {
      const n = idle.length;
      clock += gc.intervalMs;
      for (let i = 0; i < 3; i++) gc.touch();
      clock += 10;
      expect(await until(() => idle.length === n + 1, 5000)).toBe(true);
    }
    expect(gc.intervalMs).toBe(40);
    gc.stop();
  });
});

test("an idle collection another IdleGc of the process made after the last touch covers this one's", async () => {
  const clock = { t: 0 };
  const made = { a: 0, b: 0 };
  const opts = { quietMs: 10, minIntervalMs: 0, now: () => clock.t };
  const a = new IdleGc({ ...opts, quietMs: 50, collect: () => made.a++ });
  const b = new IdleGc({ ...opts, collect: () => made.b++ });
  a.touch();
  b.touch();
  clock.t += 100;
  // b collects first (its quietMs is shorter); a's turn comes after, with nothing touched since.
  expect(await until(() => made.b === 1 && a.covered === 1, 5000)).toBe(true);
  expect(made.a).toBe(0);
  // A touch of a's after that collection is new work: a collects it.
  a.touch();
  clock.t += 100;
  expect(await until(() => made.a === 1, 5000)).toBe(true);
  expect(a.covered).toBe(1);
  a.stop();
  b.stop();
});
