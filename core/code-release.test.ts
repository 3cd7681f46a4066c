import { expect, test } from "bun:test";
import { CodeRelease, FAULTS_PER_RUN, processCodeRelease, ranCodeIfFaulted } from "./code-release.ts";

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(5);
  return cond();
}

/** A CodeRelease on a fake clock whose releases are recorded at their (fake) time. */
function fake(quietMs: number, minGapMs: number) {
  const c = { clock: 0, at: [] as number[] };
  const pages = new CodeRelease({ quietMs, minGapMs, release: () => c.at.push(c.clock), now: () => c.clock });
  return { c, pages };
}

test("the pages go once the process has been quiet for quietMs after its last run, not before", async () => {
  const { c, pages } = fake(20, 0);
  for (let i = 0; i < 5; i++) {
    pages.used();
    c.clock += 10;
    await Bun.sleep(10);
  }
  // Runs every 10 ms never leave 20 ms of quiet.
  expect(c.at).toEqual([]);
  const last = c.clock - 10;
  c.clock = last + 20;
  expect(await until(() => c.at.length === 1, 5000)).toBe(true);
  expect(c.at[0]).toBe(last + 20);
  pages.stop();
});

test("one release per quiet spell: none while nothing runs, no timer left behind", async () => {
  const { c, pages } = fake(10, 0);
  await Bun.sleep(30);
  expect(c.at).toEqual([]);
  expect(pages.pending).toBe(false);
  pages.used();
  c.clock += 10;
  expect(await until(() => c.at.length === 1, 5000)).toBe(true);
  c.clock += 1000;
  await Bun.sleep(40);
  expect(c.at.length).toBe(1);
  expect(pages.pending).toBe(false);
});

test("at most one release per minGapMs, however short the quiet spells", async () => {
  const { c, pages } = fake(10, 100);
  pages.used();
  c.clock += 10;
  expect(await until(() => c.at.length === 1, 5000)).toBe(true);
  // Work again right after, then quiet: the next release waits for the gap, not only for quietMs.
  c.clock += 5;
  pages.used();
  c.clock += 20;
  await Bun.sleep(40);
  expect(c.at.length).toBe(1);
  c.clock = c.at[0]! + 100;
  expect(await until(() => c.at.length === 2, 5000)).toBe(true);
  expect(c.at[1]).toBe(c.at[0]! + 100);
  pages.stop();
});

test("a wake-up counts as a run only when enough faulted in since the last look", () => {
  let faults = 1000;
  processCodeRelease.stop();
  // The first look only sets the mark.
  ranCodeIfFaulted(() => faults);
  processCodeRelease.stop();
  faults += FAULTS_PER_RUN - 1;
  ranCodeIfFaulted(() => faults);
  expect(processCodeRelease.pending).toBe(false);
  faults += FAULTS_PER_RUN;
  ranCodeIfFaulted(() => faults);
  expect(processCodeRelease.pending).toBe(true);
  processCodeRelease.stop();
});
