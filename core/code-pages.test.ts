import { expect, test } from "bun:test";
import { lastWritableSegment, readOnlySegments } from "./code-pages.ts";

const PT_LOAD = 1;
const PT_PHDR = 6;
const R = 4;
const W = 2;
const X = 1;

/** Elf64_Phdr entries: [type, flags, vaddr, memsz]. */
function headers(entries: [number, number, number, number][]): DataView {
  const v = new DataView(new ArrayBuffer(entries.length * 56));
  entries.forEach(([type, flags, vaddr, memsz], i) => {
    v.setUint32(i * 56, type, true);
    v.setUint32(i * 56 + 4, flags, true);
    v.setBigUint64(i * 56 + 0x10, BigInt(vaddr), true);
    v.setBigUint64(i * 56 + 0x28, BigInt(memsz), true);
  });
  return v;
}

// The agent executable's own layout (readelf -l dist/agent): R, R E, then RW holding .data, .bun and
// JavaScriptCore's configuration pages, which it write-protects after start-up.
const AGENT = headers([
  [PT_PHDR, R, 0x200040, 0x1f8],
  [PT_LOAD, R, 0x200000, 0x1838764],
  [PT_LOAD, R | X, 0x1a40d00, 0x4e08f90],
  [PT_LOAD, R | W, 0x684ac90, 0xea8370],
]);

test("a non-PIE executable: its R and R E segments, page-rounded; never the RW one", () => {
  expect(readOnlySegments(AGENT, 4, 56, 0x200040)).toEqual([
    { start: 0x200000, end: 0x1a39000 },
    { start: 0x1a40000, end: 0x684a000 },
  ]);
});

test("the agent's writable segment, where the module graph lives (module-graph-pages.ts)", () => {
  expect(lastWritableSegment(AGENT, 4, 56, 0x200040)).toEqual({ start: 0x684a000, end: 0x76f3000 });
  const readOnly = headers([
    [PT_PHDR, R, 0x40, 0x118],
    [PT_LOAD, R | X, 0x0, 0x1800],
  ]);
  expect(lastWritableSegment(readOnly, 2, 56, 0x40)).toBeNull();
});

test("a position-independent executable is shifted by its load bias, beyond 32-bit addresses", () => {
  const bias = 0x5555_5555_4000;
  const pie = headers([
    [PT_PHDR, R, 0x40, 0x2d8],
    [PT_LOAD, R, 0, 0x1234],
    [PT_LOAD, R | X, 0x2000, 0x3000],
    [PT_LOAD, R | W, 0x5df0, 0x300],
  ]);
  expect(readOnlySegments(pie, 4, 56, bias + 0x40)).toEqual([
    { start: bias, end: bias + 0x2000 },
    { start: bias + 0x2000, end: bias + 0x5000 },
  ]);
});

test("a read-only segment that shares a page with a writable one is left alone", () => {
  // The R E segment ends inside the page where RW begins: that page may hold this process's writes.
  const shared = headers([
    [PT_PHDR, R, 0x40, 0x118],
    [PT_LOAD, R | X, 0x0, 0x1800],
    [PT_LOAD, R | W, 0x1900, 0x100],
  ]);
  expect(readOnlySegments(shared, 3, 56, 0x40)).toEqual([]);
});

test("unexpected headers release nothing: no PT_PHDR (unknown bias), short or truncated entries", () => {
  const noPhdr = headers([[PT_LOAD, R | X, 0x1000, 0x1000]]);
  expect(readOnlySegments(noPhdr, 1, 56, 0x1040)).toEqual([]);
  expect(readOnlySegments(AGENT, 4, 32, 0x200040)).toEqual([]);
  expect(readOnlySegments(AGENT, 5, 56, 0x200040)).toEqual([]);
});

test("releasing the executable's pages leaves the process working and its code mapped again on use", async () => {
  // In a child: the test runner's own pages are not ours to drop, and the child checks its smaps.
  const script = `
    import { releaseCodePages } from ${JSON.stringify(`${import.meta.dir}/code-pages.ts`)};
    import { readFileSync, readlinkSync } from "node:fs";
    const exe = readlinkSync("/proc/self/exe");
    const mapped = () => {
      let cur = false, kb = 0;
      for (const l of readFileSync("/proc/self/smaps", "utf8").split("\\n")) {
        if (/^[0-9a-f]+-[0-9a-f]+ /.test(l)) cur = l.endsWith(" " + exe);
        else if (cur && l.startsWith("Rss:")) kb += Number(l.split(/\\s+/)[1]);
      }
      return kb;
    };
    const before = mapped();
    const released = releaseCodePages();
    const after = mapped();
    // Work that needs code again: JSON, a regexp, a hash, a promise.
    const again = JSON.stringify({ a: [1, 2, 3] }).replace(/\\d/g, "x") + new Bun.CryptoHasher("sha256").update("x").digest("hex");
    await Promise.resolve();
    console.log(JSON.stringify({ before, released, after, again: again.length }));
  `;
  const p = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
  expect(p.stderr.toString()).toBe("");
  const r = JSON.parse(p.stdout.toString());
  expect(r.released).toBeGreaterThan(0);
  expect(r.after).toBeLessThan(r.before / 2);
  expect(r.again).toBe(13 + 64);
}, 20_000);
