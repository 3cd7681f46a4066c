import { expect, test } from "bun:test";
import { moduleGraphPages, type ReadMemory, writtenPages } from "./module-graph-pages.ts";

const PAGE = 4096;
const TRAILER = new TextEncoder().encode("\n---- Bun! ----\n");

/**
 * A writable segment as `bun build --compile` lays it out: `before` bytes of .data/.bss, then the
 * .bun section (u64 length, the modules, the 32-byte offsets record starting with the modules' byte
 * count, the trailer), then the rest of the last page. Addresses start at `base`.
 */
function segment(base: number, before: number, modules: number) {
  const sectionLength = 8 + modules + 32 + TRAILER.length;
  const size = Math.ceil((before + sectionLength) / PAGE) * PAGE;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(before, BigInt(sectionLength - 8), true);
  const offsets = before + 8 + modules;
  view.setBigUint64(offsets, BigInt(modules), true);
  bytes.set(TRAILER, offsets + 32);
  const read: ReadMemory = (address, length) => {
    const at = address - base;
    if (at < 0 || at + length > size) throw new Error(`read outside the segment at ${address}`);
    return new DataView(bytes.buffer, at, length);
  };
  return { start: base, end: base + size, bytes, view, offsets, read };
}

test("the module graph's whole pages, between the .bss page it starts in and the page of its offsets", () => {
  const base = 0x684a000;
  const s = segment(base, 0x1d8000 - 8, 12_000_000);
  const r = moduleGraphPages(s.start, s.end, s.read);
  // The modules start at a page boundary (the agent's layout): that page is the first released.
  expect(r).toEqual({ start: base + 0x1d8000, end: base + Math.floor(s.offsets / PAGE) * PAGE });
});

test("a module graph that starts inside a page leaves that page alone", () => {
  const s = segment(0x10000, 100, 5 * PAGE);
  const r = moduleGraphPages(s.start, s.end, s.read);
  expect(r?.start).toBe(0x10000 + PAGE);
});

test("nothing when the bytes are not Bun's layout", () => {
  // No trailer: a runtime that is not a compiled executable.
  const noTrailer = segment(0x10000, 100, 5 * PAGE);
  noTrailer.bytes.fill(0, noTrailer.offsets + 32);
  expect(moduleGraphPages(noTrailer.start, noTrailer.end, noTrailer.read)).toBeNull();
  // A byte count that disagrees with the section's length header.
  const count = segment(0x10000, 100, 5 * PAGE);
  count.view.setBigUint64(count.offsets, BigInt(5 * PAGE - 8), true);
  expect(moduleGraphPages(count.start, count.end, count.read)).toBeNull();
  // A byte count that points before the segment.
  const before = segment(0x10000, 100, 5 * PAGE);
  before.view.setBigUint64(before.offsets, BigInt(1e9), true);
  expect(moduleGraphPages(before.start, before.end, before.read)).toBeNull();
  // Too small to hold a graph of a whole page.
  const tiny = segment(0x10000, 0, 64);
  expect(moduleGraphPages(tiny.start, tiny.end, tiny.read)).toBeNull();
});

/** Page-map entries: "f" a present file page, "a" a present private (written) page, "-" absent. */
function pagemap(pages: string) {
  const bytes = new Uint8Array(pages.length * 8);
  const view = new DataView(bytes.buffer);
  [...pages].forEach((p, i) => {
    if (p === "f") view.setBigUint64(i * 8, (1n << 63n) | (1n << 61n) | 1234n, true);
    if (p === "a") view.setBigUint64(i * 8, (1n << 63n) | 99n, true);
  });
  return (offset: number, length: number) => bytes.subarray(offset - 0x100 * 8, offset - 0x100 * 8 + length);
}

test("written pages: present ones that are no longer the file's", () => {
  const range = { start: 0x100 * PAGE, end: 0x106 * PAGE };
  expect(writtenPages(range, pagemap("ff--ff"))).toBe(0);
  expect(writtenPages(range, pagemap("f-a-af"))).toBe(2);
  expect(writtenPages(range, () => null)).toBeNull();
  expect(writtenPages(range, () => new Uint8Array(8))).toBeNull();
});
