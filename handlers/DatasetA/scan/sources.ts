/**
 * Where scanned bytes come from, on the requester's side (the scanner
 * itself may open nothing): files and directory trees, and the readable
 * memory of a process through /proc/PID/maps and /proc/PID/mem. Reading a
 * process's memory needs ptrace access to it — root, or the same user with
 * Yama's ptrace_scope permitting — which is why it happens here and not in
 * the unprivileged scanner.
 */
import { closeSync, lstatSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { resolve } from "node:path";

export interface FileTarget {
  /** For reports: the path as text (bytes that are not UTF-8 shown as \xNN). */
  path: string;
  /** For opening: the path itself, as bytes when its name is not valid UTF-8. */
  fsPath: string | Buffer;
  size: number;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * File names are bytes. A name that is not UTF-8 cannot round-trip through
 * a JS string (the lossy decode names another, usually missing, file), so it
 * is kept as bytes for opening and shown escaped.
 */
function fromBytes(b: Buffer): { path: string; fsPath: string | Buffer } {
  try {
    const path = strictUtf8.decode(b);
    return { path, fsPath: path };
  } catch {
    let path = "";
    for (const c of b) path += c >= 0x80 ? `\\x${c.toString(16).padStart(2, "0")}` : String.fromCharCode(c);
    return { path, fsPath: b };
  }
}

export interface SourceError {
  path: string;
  code: string;
  message: string;
}

const SLASH = Buffer.from("/");

/** Pseudo-filesystems a recursive scan does not descend into (name them explicitly to scan them). */
export const PSEUDO_FS = ["/proc", "/sys", "/dev", "/run"];

/**
 * Lists the regular files under `targets` (recursively for directories).
 * Symbolic links are not followed (a link could lead a scan in circles or
 * out of the tree it was asked to cover); devices, FIFOs and sockets are
 * skipped; unreadable entries are reported, not fatal.
 */
export function listFiles(
  targets: string[],
  errors: SourceError[],
  onFile?: (t: FileTarget) => void,
): FileTarget[] {
  const out: FileTarget[] = [];
  const push = (t: FileTarget) => {
    out.push(t);
    onFile?.(t);
  };
  const visit = (bytes: Buffer, explicit: boolean) => {
    const { path, fsPath } = fromBytes(bytes);
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(fsPath);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      errors.push({ path, code: err.code ?? "EIO", message: err.message });
      return;
    }
    if (st.isFile()) {
      push({ path, fsPath, size: st.size });
      return;
    }
    if (!st.isDirectory()) return;
    if (!explicit && PSEUDO_FS.includes(path)) return;
    let names: Buffer[];
    try {
      // As bytes: names that are not UTF-8 are scanned too, not skipped with ENOENT.
      names = readdirSync(fsPath, { encoding: "buffer" }).sort(Buffer.compare);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      errors.push({ path, code: err.code ?? "EIO", message: err.message });
      return;
    }
    const prefix = bytes.at(-1) === 0x2f ? bytes : Buffer.concat([bytes, SLASH]);
    for (const n of names) visit(Buffer.concat([prefix, n]), false);
  };
  for (const t of targets) visit(Buffer.from(resolve(t)), true);
  return out;
}

/** Reads `length` bytes at `position`; fewer at end of file. */
/** Reads into `into` when given (a transfer lease of at least `length` bytes), else a new buffer. */
export function readAt(fd: number, position: number, length: number, into?: Uint8Array): Uint8Array {
  const buf = into && into.length >= length ? into.subarray(0, length) : new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** Bytes [pos, pos + len) of the concatenation of `runs` (absolute [start, end) ranges of fd). */
export function readRuns(fd: number, runs: [number, number][], pos: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let got = 0;
  let skip = pos;
  for (const [a, b] of runs) {
    const runLen = b - a;
    if (skip >= runLen) {
      skip -= runLen;
      continue;
    }
    const take = Math.min(runLen - skip, len - got);
    out.set(readAt(fd, a + skip, take), got);
    got += take;
    skip = 0;
    if (got === len) break;
  }
  return out.subarray(0, got);
}

/**
 * readAt into a buffer the caller reuses from one read to the next (grown as
 * needed): a tree scan reads hundreds of MB, and a fresh buffer per file left
 * the garbage collector that much to catch up with (peak RSS).
 */
export class ReadBuffer {
  private buf = new Uint8Array(0);
  private sinceGc = 0;

  constructor(
    private readonly max: number,
    private readonly gcEvery = 64 * 1024 * 1024,
  ) {}

  /**
   * Each read is sent to the scanner in a frame copied outside the JS heap,
   * which barely moves JSC's allocation-driven collector: without a nudge a
   * tree scan kept most of what it sent until the end (peak RSS). A
   * collection per `gcEvery` bytes read bounds that.
   */
  private counted(n: number): void {
    this.sinceGc += n;
    if (this.sinceGc < this.gcEvery) return;
    this.sinceGc = 0;
    Bun.gc(true);
  }

  /** The bytes at [position, position + length) of fd, in this buffer: valid until the next read. */
  read(fd: number, position: number, length: number): Uint8Array {
    this.counted(length);
    if (length > this.max) return readAt(fd, position, length);
    if (this.buf.length < length)
      this.buf = new Uint8Array(Math.min(this.max, Math.max(length, 2 * this.buf.length, 64 * 1024)));
    let got = 0;
    while (got < length) {
      const n = readSync(fd, this.buf, got, length - got, position + got);
      if (n === 0) break;
      got += n;
    }
    return this.buf.subarray(0, got);
  }
}

export function withFd<T>(path: string | Buffer, fn: (fd: number) => T): T {
  const fd = openSync(path, "r");
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** withFd for asynchronous work: the descriptor stays open until `fn` settles. */
export async function withFdAsync<T>(path: string | Buffer, fn: (fd: number) => Promise<T>): Promise<T> {
  const fd = openSync(path, "r");
  try {
    return await fn(fd);
  } finally {
    closeSync(fd);
  }
}

export interface MemoryRegion {
  start: number;
  end: number;
  perms: string;
  offset: number;
  path: string;
  /** Resident plus swapped bytes (from smaps); pages never touched are neither. */
  present: number;
  pageSize: number;
}

/** Kernel-provided pages that cannot (or need not) be read through /proc/PID/mem. */
const SKIP = new Set(["[vvar]", "[vvar_vclock]", "[vsyscall]"]);
const HEADER = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})\s+([0-9a-f]+)\s+\S+\s+\d+\s*(.*)$/;

/**
 * Readable regions with their resident size, from /proc/PID/smaps. Runtimes
 * reserve gigabytes they never touch (a Bun process shows ~6 GB readable,
 * a few dozen MB resident); regions with nothing resident or swapped hold
 * no content and are skipped.
 */
export function readableRegions(pid: number): MemoryRegion[] {
  const smaps = readFileSync(`/proc/${pid}/smaps`, "utf8");
  const out: MemoryRegion[] = [];
  let cur: MemoryRegion | null = null;
  const flush = () => {
    if (cur && cur.present > 0) out.push(cur);
    cur = null;
  };
  for (const line of smaps.split("\n")) {
    const m = line.match(HEADER);
    if (m) {
      flush();
      const [, s, e, perms, off, path] = m as unknown as [string, string, string, string, string, string];
      const start = Number.parseInt(s, 16);
      const end = Number.parseInt(e, 16);
      // Addresses beyond 2^53 cannot be file positions for readSync; user space stays far below.
      if (perms[0] !== "r" || SKIP.has(path.trim()) || !Number.isSafeInteger(end) || end <= start) continue;
      cur = {
        start,
        end,
        perms,
        offset: Number.parseInt(off, 16),
        path: path.trim(),
        present: 0,
        pageSize: 4096,
      };
      continue;
    }
    if (!cur) continue;
    const kv = line.match(/^(Rss|Swap|KernelPageSize):\s+(\d+) kB/);
    if (!kv) continue;
    if (kv[1] === "KernelPageSize") (cur as MemoryRegion).pageSize = Number(kv[2]) * 1024;
    else (cur as MemoryRegion).present += Number(kv[2]) * 1024;
  }
  flush();
  return out;
}

/**
 * The runs of pages of a region that hold anything (present or swapped,
 * from /proc/PID/pagemap bits 63 and 62), as [start, end) addresses. Used
 * for sparse regions so untouched reservations are not read as zeros.
 */
export function presentRuns(pid: number, r: MemoryRegion): [number, number][] {
  const page = r.pageSize;
  const first = Math.floor(r.start / page);
  const count = Math.ceil((r.end - r.start) / page);
  const runs: [number, number][] = [];
  withFd(`/proc/${pid}/pagemap`, (fd) => {
    const batch = 65536;
    let runStart = -1;
    for (let i = 0; i < count; i += batch) {
      const n = Math.min(batch, count - i);
      const raw = readAt(fd, (first + i) * 8, n * 8);
      const words = new Uint32Array(raw.buffer, raw.byteOffset, Math.floor(raw.length / 4));
      for (let j = 0; j < n; j++) {
        const hi = words[2 * j + 1] ?? 0;
        const used = (hi & 0xc0000000) !== 0;
        const addr = (first + i + j) * page;
        if (used && runStart < 0) runStart = addr;
        if (!used && runStart >= 0) {
          runs.push([runStart, addr]);
          runStart = -1;
        }
      }
    }
    if (runStart >= 0) runs.push([runStart, (first + count) * page]);
  });
  return runs;
}

export function regionName(pid: number, r: MemoryRegion): string {
  return `pid:${pid}:${r.start.toString(16)}-${r.end.toString(16)} ${r.perms}${r.path ? ` ${r.path}` : ""}`;
}
