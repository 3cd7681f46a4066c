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
 * Only segments the ELF program headers load without write permission are
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
import { lazyLibc } from "./libc-ffi.ts";

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

export interface Range {
  start: number;
  end: number;
}

/**
 * The whole pages of the loaded read-only segments, from the program headers as mapped at
 * `phdrAddress` (64-bit little-endian Elf64_Phdr entries): each PT_LOAD without PF_W, page-rounded
 * and shifted by the load bias (AT_PHDR minus PT_PHDR's address), minus any page a writable
 * segment also covers. Empty when the headers are not what this code expects.
 */
export function readOnlySegments(
  headers: DataView,
  count: number,
  entrySize: number,
  phdrAddress: number,
): Range[] {
  if (entrySize < PHDR_SIZE || headers.byteLength < count * entrySize) return [];
  const loads: { start: number; end: number; writable: boolean }[] = [];
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
  const writable = loads.filter((l) => l.writable);
  return loads
    .filter((l) => !l.writable && !writable.some((w) => w.start < l.end && l.start < w.end))
    .map((l) => ({ start: l.start + shift, end: l.end + shift }));
}

/** Found once: the executable's segments do not move. null: none, or not found. */
let releasable: Range[] | null | undefined;

function ranges(): Range[] | null {
  if (releasable !== undefined) return releasable;
  releasable = null;
  const libc = load();
  if (!libc) return null;
  const phdr = Number(libc.symbols.getauxval!(AT_PHDR));
  const entrySize = Number(libc.symbols.getauxval!(AT_PHENT));
  const count = Number(libc.symbols.getauxval!(AT_PHNUM));
  if (phdr === 0 || count === 0 || count > 64 || entrySize === 0) return null;
  const found = readOnlySegments(
    new DataView(toArrayBuffer(phdr, 0, count * entrySize)),
    count,
    entrySize,
    phdr,
  );
  if (found.length > 0) releasable = found;
  return releasable;
}

/** Unmaps this process's read-only mappings of its executable (see above); bytes advised, 0 if nothing. */
export function releaseCodePages(): number {
  const found = ranges();
  const libc = found && load();
  if (!found || !libc) return 0;
  let bytes = 0;
  for (const r of found) {
    if (libc.symbols.madvise!(r.start, r.end - r.start, MADV_DONTNEED) === 0) bytes += r.end - r.start;
  }
  return bytes;
}
