/**
 * Package bodies spooled to disk instead of held in memory (issue 21,
 * Footprint). A signed package can weigh as much as the agent executable
 * (AgentSoftware: ~120 MB). Held in memory — the chunks as they arrived,
 * then their concatenation — it took `agent update --once` to 271 MiB of
 * anonymous memory over HTTP and 153 MiB from a folder repository, against
 * 35 MiB for a cycle that installs only a small package; spooled, 59 and 37
 * MiB (bench/update-memory.ts).
 *
 * The transport writes each chunk to a file here as it arrives. The finished
 * file is mapped read-only (MAP_PRIVATE) and unlinked at once, so the trust
 * core (core/package/open.ts) still gets one Uint8Array and stays pure,
 * while the bytes are page cache the kernel can drop and re-read, never
 * anonymous memory. Nobody else can change them under the checks: the file
 * lives in the agent's own state directory (0700), its only descriptor is
 * closed before it is mapped, and once unlinked it has no name.
 *
 * `release` ends the mapping of the file at once: an anonymous mapping of
 * zero pages takes its place (mmap MAP_FIXED), so the page cache and the
 * unlinked file's disk blocks are freed now, not when the collector gets to
 * the array (a full disk waiting on a garbage collection is no state to
 * leave). The collector later unmaps the zero pages, which cost nothing
 * until touched. So an array reads zeros once released: release only what
 * has been consumed (client.ts does after staging the verified files).
 */
import { FFIType, ptr } from "bun:ffi";
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { StoreError, UpdateError } from "../errors.ts";
import { lazyLibc } from "../libc-ffi.ts";
import { pidAlive } from "../pid.ts";
import { assertNotSymlink } from "../store/state-links.ts";
import { classifyWriteError } from "../write-errors.ts";

const PROT_READ_WRITE = 0x3;
const MAP_PRIVATE_FIXED_ANONYMOUS = 0x02 | 0x10 | 0x20;
const MADV_DONTNEED = 4;
const libc = lazyLibc({
  mmap: {
    args: [FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.i32, FFIType.i32, FFIType.i64],
    returns: FFIType.ptr,
  },
  madvise: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
});

/** The bytes of a spooled body and how to let go of them. */
export interface SpooledBody {
  bytes: Uint8Array;
  /** Unmaps the file now; the array reads zeros afterwards. Idempotent. */
  release(): void;
}

/** One file being written. Every method names the file and the source in its errors. */
export interface SpoolFile {
  readonly path: string;
  readonly size: number;
  write(chunk: Uint8Array): void;
  /** Closes, maps and unlinks the file. */
  finish(): SpooledBody;
  /** Closes and unlinks the file; safe after a failed write and after finish(). */
  abort(): void;
}

export class Spool {
  private seq = 0;
  private swept = false;

  constructor(readonly dir: string) {}

  /** A new, empty spool file for the body of `source` (a URL or path, used in errors). */
  open(source: string): SpoolFile {
    this.prepare(source);
    const path = join(this.dir, `${process.pid}-${Date.now().toString(36)}-${this.seq++}.part`);
    let fd: number;
    try {
      fd = openSync(path, "wx", 0o600);
    } catch (e) {
      throw spoolError(path, source, "cannot create the spool file", e);
    }
    return new FileInSpool(path, fd, source);
  }

  /**
   * Creates the directory, and once per process removes spool files that a
   * process no longer running left behind (killed between create and unlink).
   */
  private prepare(source: string): void {
    if (this.swept) return;
    // Root writes here: a link in its place would turn the writes and the sweep onto its target.
    assertNotSymlink(this.dir);
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw spoolError(this.dir, source, "cannot create the spool directory", e);
    }
    for (const name of readdirSync(this.dir)) {
      const pid = Number(name.split("-")[0]);
      if (pid === process.pid || (Number.isInteger(pid) && pid > 0 && pidAlive(pid))) continue;
      rmSync(join(this.dir, name), { force: true });
    }
    this.swept = true;
  }
}

class FileInSpool implements SpoolFile {
  size = 0;
  private fd: number | undefined;
  private unlinked = false;

  constructor(
    readonly path: string,
    fd: number,
    private readonly source: string,
  ) {
    this.fd = fd;
  }

  write(chunk: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`${this.path}: spool file already closed`);
    let off = 0;
    try {
      while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
    } catch (e) {
      throw spoolError(this.path, this.source, `cannot write after ${this.size + off} bytes`, e);
    }
    this.size += chunk.length;
  }

  finish(): SpooledBody {
    this.close();
    try {
      if (this.size === 0) return { bytes: new Uint8Array(0), release() {} };
      let bytes: Uint8Array;
      try {
        bytes = Bun.mmap(this.path, { shared: false });
      } catch (e) {
        throw spoolError(this.path, this.source, "cannot map the spool file", e);
      }
      if (bytes.length !== this.size) {
        throw spoolError(this.path, this.source, `holds ${bytes.length} bytes, ${this.size} were written`);
      }
      return { bytes, release: releaser(bytes) };
    } finally {
      this.unlink();
    }
  }

  abort(): void {
    this.close();
    this.unlink();
  }

  private close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    closeSync(fd);
  }

  private unlink(): void {
    if (this.unlinked) return;
    this.unlinked = true;
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone: the next process's sweep has nothing to do either.
    }
  }
}

function releaser(bytes: Uint8Array): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const lib = libc();
    // Without libc the file stays mapped until the collector unmaps it: later, not wrong.
    if (!lib) return;
    const at = ptr(bytes);
    const replaced = lib.symbols.mmap!(
      at,
      bytes.byteLength,
      PROT_READ_WRITE,
      MAP_PRIVATE_FIXED_ANONYMOUS,
      -1,
      0,
    );
    // MAP_FAILED is (void*)-1: keep the mapping but drop its pages, the best left to do.
    if (replaced !== at) lib.symbols.madvise!(at, bytes.byteLength, MADV_DONTNEED);
  };
}

/** A disk that refuses the write is the store's error (STORE_NO_SPACE: health AMBER, disk-health.ts); anything else UPD_IO. */
function spoolError(path: string, source: string, what: string, cause?: unknown): Error {
  const refused = cause === undefined ? undefined : classifyWriteError(cause, path, `spooling ${source}`);
  if (refused instanceof StoreError) return refused;
  const why = cause ? `: ${(cause as Error).message ?? String(cause)}` : "";
  return new UpdateError("UPD_IO", `${path}: ${what} (spooling ${source})${why}`, {
    file: path,
    details: { source },
    ...(cause ? { cause } : {}),
  });
}
