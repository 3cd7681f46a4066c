/**
 * Gives an idle process's mappings of its own executable back (issue 21,
 * footprint). The agent is one 117 MiB executable — Bun's runtime and our
 * bundle — and every process of it keeps mapped the code its start-up
 * touched, plus the kernel's fault-around neighbours of each page (64 KiB
 * windows): an idle scanner host kept ~29 MiB of the executable mapped, the
 * nine processes of an agent with every group running ~62 MiB of PSS,
 * though an idle process runs a small part of that code.
 *
 * `releaseCodePages` asks the kernel (madvise MADV_DONTNEED) to unmap the
 * executable's read-only segments from this process. Their pages hold the
 * file's own bytes, so nothing is lost: the page cache keeps them as long as
 * the kernel likes, shared with every other process of the agent, and the
 * next call that needs a page maps it again with a minor fault. Unmapped
 * page-cache pages are also the ones the kernel reclaims first under memory
 * pressure, where mapped executable pages are protected: the machine gets
 * the memory back, not only a smaller figure.
 *
 * Of the writable segment, only the embedded module graph goes — pages Bun
 * never writes, found and checked by core/module-graph-pages.ts. Otherwise
 * only segments the ELF program headers load without write permission are
 * touched, never a page a writable segment shares. A private writable
 * mapping may hold this process's own modified copies (relocated data,
 * JavaScriptCore's configuration pages, which it write-protects after
 * start-up and so show as read-only in /proc/self/maps), and MADV_DONTNEED
 * would silently put the file's original bytes back there. The headers are
 * read from memory (getauxval's AT_PHDR), not from /proc: a sandboxed host
 * that is not dumpable may not open /proc/self.
 *
 * Called from `collectIdle` (core/host/idle-gc.ts) when a process has been
 * quiet: a host, the supervisor, the query worker. Anything that fails (no
 * libc, unexpected headers) leaves the mappings as they are.
 */
import { FFIType, toArrayBuffer } from "bun:ffi";
import { closeSync, openSync, readSync } from "node:fs";
import { lazyLibc } from "./libc-ffi.ts";
import { moduleGraphPages, type Range, writtenPages } from "./module-graph-pages.ts";

const MADV_DONTNEED = 4;
const AT_PHDR = 3;
const AT_PHENT = 4;
const AT_PHNUM = 5;
const PT_LOAD = 1;
const PT_PHDR = 6;
const PF_W = 2;
/** Size of an Elf64_Phdr. */
const PHDR_SIZE = 56;
const PAGE = 4096;

/** Arithmetic, not `& ~0xfff`: addresses of a position-independent executable exceed 32 bits. */
const pageDown = (address: number) => address - (address % PAGE);
const pageUp = (address: number) => pageDown(address + PAGE - 1);

const load = lazyLibc({
  madvise: { args: [FFIType.u64, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  getauxval: { args: [FFIType.u64], returns: FFIType.u64 },
});

export type { Range };

interface Segment extends Range {
  writable: boolean;
}

/**
 * The loaded segments, from the program headers as mapped at `phdrAddress` (64-bit little-endian
 * Elf64_Phdr entries): each PT_LOAD, page-rounded and shifted by the load bias (AT_PHDR minus
 * PT_PHDR's address). Empty when the headers are not what this code expects.
 */
function loadSegments(headers: DataView, count: number, entrySize: number, phdrAddress: number): Segment[] {
  if (entrySize < PHDR_SIZE || headers.byteLength < count * entrySize) return [];
  const loads: Segment[] = [];
  let bias: number | undefined;
  for (let i = 0; i < count; i++) {
    const o = i * entrySize;
    const type = headers.getUint32(o, true);
    const vaddr = Number(headers.getBigUint64(o + 0x10, true));
    if (type === PT_PHDR) bias = phdrAddress - vaddr;
    if (type !== PT_LOAD) continue;
    const memsz = Number(headers.getBigUint64(o + 0x28, true));
    const writable = (headers.getUint32(o + 4, true) & PF_W) !== 0;
    loads.push({ start: pageDown(vaddr), end: pageUp(vaddr + memsz), writable });
  }
  // Without PT_PHDR the bias is unknown (a static executable without one): release nothing.
  if (bias === undefined) return [];
  const shift = bias;
  return loads.map((l) => ({ start: l.start + shift, end: l.end + shift, writable: l.writable }));
}

/**
 * The whole pages of the loaded read-only segments (see loadSegments), minus any page a writable
 * segment also covers.
 */
export function readOnlySegments(
  headers: DataView,
  count: number,
  entrySize: number,
  phdrAddress: number,
): Range[] {
  const loads = loadSegments(headers, count, entrySize, phdrAddress);
  const writable = loads.filter((l) => l.writable);
  return loads
    .filter((l) => !l.writable && !writable.some((w) => w.start < l.end && l.start < w.end))
    .map((l) => ({ start: l.start, end: l.end }));
}

/** The highest writable segment: where `bun build --compile` puts the module graph (module-graph-pages.ts). */
export function lastWritableSegment(
  headers: DataView,
  count: number,
  entrySize: number,
  phdrAddress: number,
): Range | null {
  const writable = loadSegments(headers, count, entrySize, phdrAddress).filter((l) => l.writable);
  const last = writable.sort((a, b) => b.end - a.end)[0];
  return last ? { start: last.start, end: last.end } : null;
}

interface Releasable {
  /** The read-only segments: always released. */
  code: Range[];
  /** The embedded module graph's pages, inside a writable segment: released while this process never wrote one. */
  moduleGraph: Range | null;
}

/** Found once: the executable's segments do not move. null: none, or not found. */
let releasable: Releasable | null | undefined;

function ranges(): Releasable | null {
  if (releasable !== undefined) return releasable;
  releasable = null;
  const libc = load();
  if (!libc) return null;
  const phdr = Number(libc.symbols.getauxval!(AT_PHDR));
  const entrySize = Number(libc.symbols.getauxval!(AT_PHENT));
  const count = Number(libc.symbols.getauxval!(AT_PHNUM));
  if (phdr === 0 || count === 0 || count > 64 || entrySize === 0) return null;
  const headers = new DataView(toArrayBuffer(phdr, 0, count * entrySize));
  const code = readOnlySegments(headers, count, entrySize, phdr);
  if (code.length === 0) return null;
  const writable = lastWritableSegment(headers, count, entrySize, phdr);
  const read = (address: number, length: number) => new DataView(toArrayBuffer(address, 0, length));
  releasable = { code, moduleGraph: writable && moduleGraphPages(writable.start, writable.end, read) };
  return releasable;
}

/**
 * Whether this process's page map could be opened: asked once. A sandboxed host may not open it (not
 * dumpable, or outside its Landlock paths), and a refused open every 10 s would fill the audit log
 * with Landlock denials for nothing.
 */
let pagemapReadable = true;

/** This process's page map, or null where it may not read it (a sandboxed host). */
function readPagemap(offset: number, length: number): Uint8Array | null {
  if (!pagemapReadable) return null;
  let fd: number | undefined;
  try {
    fd = openSync("/proc/self/pagemap", "r");
  } catch {
    pagemapReadable = false;
    return null;
  }
  try {
    const bytes = new Uint8Array(length);
    return readSync(fd, bytes, 0, length, offset) === length ? bytes : null;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Unmaps this process's read-only mappings of its executable and the module graph's pages (see
 * above); bytes advised, 0 if nothing.
 */
export function releaseCodePages(): number {
  const found = ranges();
  const libc = found && load();
  if (!found || !libc) return 0;
  const release = [...found.code];
  const graph = found.moduleGraph;
  if (graph) {
    // A page this process wrote is its own copy: never released. A process that wrote one stops here for good.
    if ((writtenPages(graph, readPagemap) ?? 0) > 0) found.moduleGraph = null;
    else release.push(graph);
  }
  let bytes = 0;
  for (const r of release) {
    if (libc.symbols.madvise!(r.start, r.end - r.start, MADV_DONTNEED) === 0) bytes += r.end - r.start;
  }
  return bytes;
}
