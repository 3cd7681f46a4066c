/**
 * Reader threads (issue 21, footprint). Fds share a thread unless one asks
 * for its own: a thread is a JavaScriptCore VM of its own. The thread's own
 * garbage collection: it blocks in poll() and never returns to its event
 * loop, so no timer collects its heap. After a burst it collects once, when
 * its fds have been quiet for quietMs, at most once per gcIntervalMs; a
 * thread that has seen nothing does not, and a collection counts for the
 * fds whose records it collected.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inotifyAddWatch, inotifyInit } from "./libc.ts";
import { readerThreads, SensorReader } from "./reader.ts";

const IN_CREATE = 0x100;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function until(what: string, ms: number, probe: () => boolean): Promise<void> {
  const end = performance.now() + ms;
  while (!probe()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

function watchedDir(quietMs: number, gcIntervalMs = 0, ownThread = false) {
  const dir = mkdtempSync(join(tmpdir(), "outpost-reader-gc-"));
  const fd = inotifyInit();
  expect(fd).toBeGreaterThanOrEqual(0);
  expect(inotifyAddWatch(fd, dir, IN_CREATE)).toBeGreaterThanOrEqual(0);
  const seen: unknown[] = [];
  const reader = new SensorReader<unknown>(fd, { kind: "inotify", quietMs, gcIntervalMs, ownThread }, (r) =>
    seen.push(...r),
  );
  reader.start();
  cleanups.push(async () => {
    await reader.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const burst = (tag: string, n: number) => {
    for (let i = 0; i < n; i++) writeFileSync(join(dir, `${tag}-${i}`), "x");
  };
  return { reader, seen, burst, dir };
}

test("after a burst the reader thread collects its heap once, when the fd has gone quiet", async () => {
  const { reader, seen, burst } = watchedDir(50);
  burst("a", 200);
  await until("the first burst's records", 10_000, () => seen.length >= 200);
  await until("a collection after the first burst", 10_000, () => reader.stats().collections === 1);
  burst("b", 200);
  await until("the second burst's records", 10_000, () => seen.length >= 400);
  // One collection per burst, not one per quiet period: the count follows the bursts.
  await until("a collection after the second burst", 10_000, () => reader.stats().collections === 2);
  expect(reader.error).toBeUndefined();
});

test("a reader that has read nothing does not collect (it blocks in poll with no timeout)", async () => {
  const quiet = watchedDir(50, 0, true);
  const busy = watchedDir(50, 0, true);
  busy.burst("c", 50);
  // The busy reader's collection comes 50 ms after its burst; by then the idle one, started at the
  // same time with the same quietMs, would have collected too if it collected without a burst.
  await until("the busy reader's collection", 10_000, () => busy.reader.stats().collections === 1);
  expect(quiet.reader.stats().collections).toBe(0);
  expect(quiet.seen).toEqual([]);
});

test("on a shared thread a collection counts for the fds whose records it collected", async () => {
  const quiet = watchedDir(50);
  const busy = watchedDir(50);
  busy.burst("h", 50);
  await until("the busy reader's collection", 10_000, () => busy.reader.stats().collections === 1);
  expect(quiet.reader.stats().collections).toBe(0);
  expect(quiet.seen).toEqual([]);
});

test("fds share one thread; an own thread is apart; the last fd off a thread ends it", async () => {
  const before = readerThreads();
  const shared = [watchedDir(2000, 30_000), watchedDir(2000, 30_000), watchedDir(2000, 30_000)];
  expect(readerThreads()).toBe(before + 1);
  const own = watchedDir(2000, 30_000, true);
  expect(readerThreads()).toBe(before + 2);
  // Every fd on the shared thread delivers its own records, and only those.
  for (const [i, s] of shared.entries()) s.burst(`s${i}`, 5 + i);
  own.burst("o", 4);
  await until(
    "every fd's records",
    10_000,
    () => shared.every((s, i) => s.seen.length === 5 + i) && own.seen.length === 4,
  );
  for (const [i, s] of shared.entries())
    expect(new Set(s.seen.map((r) => (r as { name: string }).name.split("-")[0]))).toEqual(
      new Set([`s${i}`]),
    );
  // One fd off the shared thread: the others keep reading on it.
  await shared[0]!.reader.stop();
  shared[1]!.burst("t", 3);
  await until("records after a neighbour stopped", 10_000, () => shared[1]!.seen.length === 9);
  expect(readerThreads()).toBe(before + 2);
  await shared[1]!.reader.stop();
  await shared[2]!.reader.stop();
  await own.reader.stop();
  expect(readerThreads()).toBe(before);
  // A reader started afterwards gets a new thread.
  const again = watchedDir(2000, 30_000);
  again.burst("u", 2);
  await until("records on a new thread", 10_000, () => again.seen.length === 2);
  expect(again.reader.error).toBeUndefined();
});

test("at most one collection per gcIntervalMs: a second burst soon after is left to the next one", async () => {
  const limited = watchedDir(50, 60_000);
  const free = watchedDir(50, 0);
  for (const [tag, r] of [
    ["d", limited],
    ["e", free],
  ] as const)
    r.burst(tag, 50);
  await until(
    "both first collections",
    10_000,
    () => limited.reader.stats().collections === 1 && free.reader.stats().collections === 1,
  );
  limited.burst("f", 50);
  free.burst("g", 50);
  // The unlimited reader collects after its second burst; the limited one, same quietMs, does not.
  await until(
    "the unlimited reader's second collection",
    10_000,
    () => free.reader.stats().collections === 2,
  );
  await until("the limited reader's second burst read", 10_000, () => limited.seen.length >= 100);
  expect(limited.reader.stats().collections).toBe(1);
});

test("an fd that cannot be read is given up alone: the others on its thread keep reading", async () => {
  const good = watchedDir(2000, 30_000);
  // A directory polls readable at once and read() fails (EISDIR): the thread must drop it, not stop.
  const bad = new SensorReader<unknown>(openSync(good.dir, "r"), { kind: "inotify" }, () => {});
  bad.start();
  cleanups.push(() => bad.stop());
  await until("the unreadable fd's error", 10_000, () => bad.error !== undefined);
  expect(bad.error).toContain("read failed (errno 21)");
  good.burst("v", 3);
  await until("records from its neighbour", 10_000, () => good.seen.length === 3);
  expect(good.reader.error).toBeUndefined();
});
