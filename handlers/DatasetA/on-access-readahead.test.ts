import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReadAhead } from "./on-access-readahead.ts";

function tree() {
  const dir = mkdtempSync(join(tmpdir(), "outpost-readahead-"));
  for (let i = 0; i < 30; i++) writeFileSync(join(dir, `f${i}`), "x".repeat(100));
  writeFileSync(join(dir, "big"), "x".repeat(5000));
  writeFileSync(join(dir, "empty"), "");
  mkdirSync(join(dir, "sub"));
  symlinkSync(join(dir, "f0"), join(dir, "link"));
  return { dir, order: readdirSync(dir) };
}

describe("ReadAhead", () => {
  test("after two waits in a directory, the regular files that follow in directory order are fetched, bounded", () => {
    const { dir, order } = tree();
    const fetched: string[] = [];
    const ra = new ReadAhead({
      wanted: (p) => !p.endsWith("/f7"),
      fetch: (p) => fetched.push(p),
      queued: () => fetched.length,
      files: 8,
      bytes: 100_000,
      maxFileBytes: 1000,
    });
    ra.onReach(join(dir, order[0]!), 1000);
    expect(fetched).toEqual([]);
    ra.onReach(join(dir, order[1]!), 1001);
    const expected = order
      .slice(2)
      .filter((n) => /^f\d+$/.test(n) && n !== "f7")
      .slice(0, 8)
      .map((n) => join(dir, n));
    expect(fetched).toEqual(expected);
    // Reached again inside what was fetched: the next round starts where the last one stopped.
    ra.onReach(join(dir, order[3]!), 1002);
    expect(fetched.length).toBe(16);
    expect(new Set(fetched).size).toBe(16);
    expect(fetched.some((p) => /\/(big|empty|sub|link)$/.test(p))).toBe(false);
    expect(ra.counters).toEqual({ rounds: 2, queued: 16 });
    rmSync(dir, { recursive: true, force: true });
  });

  test("waits far apart in time start nothing; a full queue starts nothing", () => {
    const { dir, order } = tree();
    const fetched: string[] = [];
    const ra = new ReadAhead({
      wanted: () => true,
      fetch: (p) => fetched.push(p),
      queued: () => 0,
      windowMs: 100,
    });
    ra.onReach(join(dir, order[0]!), 1000);
    ra.onReach(join(dir, order[1]!), 5000);
    expect(fetched).toEqual([]);
    const busy = new ReadAhead({ wanted: () => true, fetch: (p) => fetched.push(p), queued: () => 256 });
    busy.onReach(join(dir, order[0]!), 1000);
    busy.onReach(join(dir, order[1]!), 1001);
    expect(fetched).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });
});
