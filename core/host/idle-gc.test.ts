import { expect, test } from "bun:test";
import { IdleGc } from "./idle-gc.ts";

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(5);
  return cond();
}

test("one collection after the work stops, none while it goes on, none when idle", async () => {
  let n = 0;
  const gc = new IdleGc(40, 0, () => n++);
  for (let i = 0; i < 5; i++) gc.touch();
  expect(n).toBe(0);
  expect(await until(() => n === 1, 5000)).toBe(true);
  // Nothing touched it since: no further collections (no timer left behind).
  await Bun.sleep(100);
  expect(n).toBe(1);
  gc.stop();
});

test("bursts closer than minIntervalMs share one collection", async () => {
  let n = 0;
  let clock = 0;
  const gc = new IdleGc(
    10,
    60_000,
    () => n++,
    () => clock,
  );
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
  const gc = new IdleGc(
    1000,
    0,
    (i) => {
      n++;
      idle.push(i);
    },
    () => clock,
    50,
  );
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
  const gc = new IdleGc(
    20,
    0,
    (i) => idle.push(i),
    () => clock,
  );
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
  const gc = new IdleGc(
    20,
    60_000,
    () => n++,
    () => clock,
  );
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
  const gc = new IdleGc(
    20,
    30,
    (i) => idle.push(i),
    () => clock,
    10,
  );
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
  const gc = new IdleGc(
    20,
    0,
    (i) => idle.push(i),
    () => 0,
    10,
  );
  gc.touch();
  expect(await until(() => idle.length === 2, 5000)).toBe(true);
  await Bun.sleep(150);
  expect(idle).toEqual([false, false]);
  gc.stop();
});
