/**
 * NewDirWatcher against the real kernel (root): directories created or
 * moved into a watched temp dir are named; files created there never
 * cross to the main thread.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NewDirWatcher } from "./new-dirs.ts";

const isRoot = process.getuid?.() === 0;
const root = mkdtempSync(join(tmpdir(), "outpost-newdirs-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(5);
  return cond();
}

describe.if(isRoot)("new directories (fanotify FID group)", () => {
  test("a created and a moved-in directory are named; 200 new files are filtered on the reader thread", async () => {
    const watched = join(root, "w");
    const outside = join(root, "o");
    mkdirSync(watched);
    mkdirSync(join(outside, "tree"), { recursive: true });
    const seen: string[] = [];
    const w = new NewDirWatcher({ onNewDir: (p) => seen.push(p), onOverflow: () => {} });
    expect(w.start()).toBeUndefined();
    try {
      expect(w.watch(watched)).toBe("new");
      expect(w.watch(watched)).toBe("known");
      for (let i = 0; i < 200; i++) writeFileSync(join(watched, `f${i}`), "x");
      mkdirSync(join(watched, "made"));
      renameSync(join(outside, "tree"), join(watched, "tree"));
      expect(await until(() => seen.length >= 2)).toBe(true);
      expect(seen.sort()).toEqual([join(watched, "made"), join(watched, "tree")]);
      expect(w.counters).toMatchObject({ newDirs: 2, notDirs: 0, unresolved: 0 });
    } finally {
      await w.stop();
    }
  }, 20_000);
});
