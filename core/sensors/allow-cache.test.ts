import { describe, expect, test } from "bun:test";
import { AllowCache, type FileIdentity } from "./allow-cache.ts";

const file = (ino: bigint, extra: Partial<FileIdentity> = {}): FileIdentity => ({
  dev: 2049n,
  ino,
  mtimeNs: 1_700_000_000_123_456_789n,
  ctimeNs: 1_700_000_000_123_456_789n,
  size: 4096n,
  ...extra,
});

describe("AllowCache", () => {
  test("a file is allowed only while every part of its identity is unchanged", () => {
    const c = new AllowCache(1024);
    const f = file(42n);
    expect(c.has(f)).toBe(false);
    c.add(f);
    expect(c.has({ ...f })).toBe(true);
    expect(c.has(file(42n, { ctimeNs: f.ctimeNs + 1n }))).toBe(false);
    expect(c.has(file(42n, { mtimeNs: f.mtimeNs + 1n }))).toBe(false);
    expect(c.has(file(42n, { size: 4097n }))).toBe(false);
    expect(c.has(file(42n, { dev: 2050n }))).toBe(false);
    expect(c.has(file(43n))).toBe(false);
  });

  test("an all-zero identity never matches an empty slot; top-bit inode numbers round-trip", () => {
    const c = new AllowCache(64);
    expect(c.has({ dev: 0n, ino: 0n, mtimeNs: 0n, ctimeNs: 0n, size: 0n })).toBe(false);
    const big = file(2n ** 64n - 5n, { dev: 2n ** 63n + 7n });
    c.add(big);
    expect(c.has(big)).toBe(true);
    expect(c.has(file(2n ** 63n - 5n, { dev: 2n ** 63n + 7n }))).toBe(false);
  });

  test("remove forgets that one version and no other entry", () => {
    const c = new AllowCache(1024);
    for (let i = 1n; i <= 100n; i++) c.add(file(i));
    c.remove(file(50n, { size: 1n })); // another version: nothing to forget
    expect(c.has(file(50n))).toBe(true);
    c.remove(file(50n));
    expect(c.has(file(50n))).toBe(false);
    for (let i = 1n; i <= 100n; i++) if (i !== 50n) expect(c.has(file(i))).toBe(true);
    c.add(file(50n));
    expect(c.has(file(50n))).toBe(true);
  });

  test("clear forgets everything at once; entries added afterwards count", () => {
    const c = new AllowCache(1024);
    for (let i = 1n; i <= 100n; i++) c.add(file(i));
    expect(c.has(file(50n))).toBe(true);
    c.clear();
    for (let i = 1n; i <= 100n; i++) expect(c.has(file(i))).toBe(false);
    c.add(file(7n));
    expect(c.has(file(7n))).toBe(true);
    expect(c.has(file(8n))).toBe(false);
  });

  test("full: old entries are evicted, never a wrong answer", () => {
    const c = new AllowCache(64);
    for (let i = 1n; i <= 1000n; i++) c.add(file(i));
    let kept = 0;
    for (let i = 1n; i <= 1000n; i++) if (c.has(file(i))) kept++;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(64);
    for (let i = 1001n; i <= 2000n; i++) expect(c.has(file(i))).toBe(false);
  });

  test("another thread sees the table through the shared buffer, and never a torn entry", async () => {
    const c = new AllowCache(256);
    const src = `
      import { AllowCache } from ${JSON.stringify(new URL("./allow-cache.ts", import.meta.url).href)};
      self.onmessage = (m) => {
        const c = new AllowCache(AllowCache.slotsOf(m.data.buffer), m.data.buffer);
        const f = (ino, v) => ({ dev: 1n, ino, mtimeNs: v, ctimeNs: v, size: v });
        let wrong = 0, seen = 0;
        const deadline = Date.now() + 5000;
        // The writer rewrites the same slots with (ino, v, v, v) for growing v: a hit on a mixed
        // identity (mtime of one write, size of another) would be a torn read taken for a match.
        while (Date.now() < deadline && seen < 2000) {
          for (let ino = 1n; ino <= 8n; ino++) {
            for (const v of [1n, 2n, 3n]) if (c.has(f(ino, v))) seen++;
            if (c.has({ dev: 1n, ino, mtimeNs: 1n, ctimeNs: 2n, size: 3n })) wrong++;
          }
        }
        postMessage({ wrong, seen });
      };`;
    const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
    const w = new Worker(url);
    const done = new Promise<{ wrong: number; seen: number }>((resolve) => {
      w.onmessage = (m) => resolve(m.data);
    });
    w.postMessage({ buffer: c.buffer });
    let stop = false;
    void done.then(() => {
      stop = true;
    });
    const deadline = Date.now() + 6000;
    while (!stop && Date.now() < deadline) {
      for (let ino = 1n; ino <= 8n; ino++)
        for (const v of [1n, 2n, 3n]) c.add({ dev: 1n, ino, mtimeNs: v, ctimeNs: v, size: v });
      c.clear();
      await Promise.resolve();
      await new Promise((r) => setImmediate(r));
    }
    const r = await done;
    w.terminate();
    expect(r.wrong).toBe(0);
    expect(r.seen).toBeGreaterThan(0);
  }, 15_000);
});
