/**
 * The pages of the agent's own JavaScript inside its executable (issue 21,
 * footprint): `bun build --compile` embeds the bundle — minified sources and
 * their precompiled bytecode, 12 MB for the agent — as the ELF section
 * `.bun`, at the end of the executable's writable segment. Every process of
 * the agent maps the part it loaded or decoded, and keeps it mapped: 3–6 MiB
 * of file pages each, 9.2 MiB distinct across an agent with every group
 * running. Like the code pages (core/code-pages.ts), they can go when the
 * process is quiet: an idle host reads none of them again, and a busy
 * process maps back only the bytecode of what it runs (the supervisor's
 * 10 s cycle, ~2.3 MiB within ~5 s of a release).
 *
 * They are part of a writable mapping, where MADV_DONTNEED is safe only for
 * pages this process never wrote: a written page is a private copy, and the
 * release would silently put the file's bytes back. Bun reads the module
 * graph and never writes it — every process of a demo agent holds the range
 * as file pages only, checked on the compiled binary by
 * test/binary-code-pages.test.ts — and where this process may read its own
 * page map (the supervisor; a sandboxed host may not open /proc/self) the
 * release checks that again first (`writtenPages`).
 *
 * The section has no loaded header of its own: it is found from its end. The
 * module graph ends with Bun's trailer ("\n---- Bun! ----\n"), preceded by its
 * 32-byte offsets record whose first field is the byte count of the modules
 * before it, and the section starts with a 64-bit length of what follows
 * (StandaloneModuleGraph). Only a layout where all three agree is released.
 */

export interface Range {
  start: number;
  end: number;
}

const PAGE = 4096;
const TRAILER = new TextEncoder().encode("\n---- Bun! ----\n");
/** StandaloneModuleGraph.Offsets: byte_count u64, modules (u32, u32), entry u32, exec argv (u32, u32), flags u32. */
const OFFSETS_SIZE = 32;
/** How far before the writable segment's end the trailer may sit: the section ends inside the last page. */
const TAIL = 2 * PAGE;

const pageDown = (address: number) => address - (address % PAGE);
const pageUp = (address: number) => pageDown(address + PAGE - 1);

/** Reads `length` bytes of this process's memory at `address`. */
export type ReadMemory = (address: number, length: number) => DataView;

function lastIndexOf(bytes: DataView, needle: Uint8Array): number {
  outer: for (let i = bytes.byteLength - needle.length; i >= 0; i--) {
    for (let j = 0; j < needle.length; j++) if (bytes.getUint8(i + j) !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * The whole pages of the module graph embedded at the end of the writable segment
 * [`segmentStart`, `segmentEnd`), or null when the bytes there are not Bun's layout (a runtime that
 * is not a compiled executable, a changed format): then nothing is released.
 */
export function moduleGraphPages(segmentStart: number, segmentEnd: number, read: ReadMemory): Range | null {
  if (segmentEnd - segmentStart < TAIL + OFFSETS_SIZE) return null;
  const tailStart = segmentEnd - TAIL;
  const at = lastIndexOf(read(tailStart, TAIL), TRAILER);
  if (at < OFFSETS_SIZE) return null;
  const offsets = tailStart + at - OFFSETS_SIZE;
  const byteCount = Number(read(offsets, 8).getBigUint64(0, true));
  const modules = offsets - byteCount;
  const end = tailStart + at + TRAILER.length;
  // The section's own length header sits just before the modules and counts everything after it.
  if (byteCount <= 0 || modules - 8 < segmentStart) return null;
  if (Number(read(modules - 8, 8).getBigUint64(0, true)) !== end - modules) return null;
  // Whole pages only: the page before the modules is shared with .bss, the last one with the offsets.
  const range = { start: pageUp(modules), end: pageDown(offsets) };
  return range.end > range.start ? range : null;
}

/** Page-map entry bits (Documentation/admin-guide/mm/pagemap.rst). */
const PRESENT = 1n << 63n;
const FILE_OR_SHARED = 1n << 61n;

/**
 * How many pages of `range` this process has written (present, and no longer the file's page), from
 * its page map; null when the map cannot be read.
 */
export function writtenPages(
  range: Range,
  pagemap: (offset: number, length: number) => Uint8Array | null,
): number | null {
  const pages = (range.end - range.start) / PAGE;
  const bytes = pagemap((range.start / PAGE) * 8, pages * 8);
  if (!bytes || bytes.byteLength !== pages * 8) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let written = 0;
  for (let i = 0; i < pages; i++) {
    const entry = view.getBigUint64(i * 8, true);
    if ((entry & PRESENT) !== 0n && (entry & FILE_OR_SHARED) === 0n) written++;
  }
  return written;
}
