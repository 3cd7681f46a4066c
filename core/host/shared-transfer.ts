/**
 * Bytes to a host without a copy through its pipe. The supervisor creates a
 * memfd, maps it read-write, and seals it (no shrink, no grow, no writable
 * mapping or write() by anyone else — F_SEAL_FUTURE_WRITE keeps only our own
 * existing mapping writable); the host inherits the fd as fd 3 and maps it
 * read-only. A caller leases a region, reads a file straight into it, and
 * passes the view in a request: the frame encoder (frame.ts) sends
 * {"$shm": [offset, length]} instead of the bytes, and the host's decoder
 * gives the handler a view of its mapping. The host gains no filesystem
 * access (an inherited fd, no path; Landlock unchanged) and cannot change
 * what the supervisor reads or shrink the file under it (SIGBUS).
 *
 * Regions are handed out first-fit from the lowest offset, so the pages ever
 * touched (shmem, charged to the supervisor) stay near the peak in use, not
 * the whole size. A lease is released when its request has settled; a host
 * that crashed or timed out may still be reading a released region, but its
 * answer is discarded with the request (channel.ts), so reuse cannot change
 * a verdict anyone acts on. When no region is free, callers fall back to
 * ordinary bytes (copied through the pipe): the transfer never refuses work.
 */
import { FFIType, ptr, toArrayBuffer } from "bun:ffi";
import { lazyLibc } from "../libc-ffi.ts";

/** The fd number the host inherits the region as (after stdin, stdout, stderr). */
export const TRANSFER_FD = 3;
/** Env var telling the host its region's size ("<fd>:<bytes>"). */
export const TRANSFER_ENV = "OUTPOST_HOST_TRANSFER";
/** The placeholder key in frame JSON for bytes in the shared region; user data may not use it. */
export const SHM_KEY = "$shm";

const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
const F_SEAL_SEAL = 0x1;
const F_SEAL_SHRINK = 0x2;
const F_SEAL_GROW = 0x4;
const F_SEAL_FUTURE_WRITE = 0x10;
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
/** Lease granularity: keeps regions aligned and the free list short. */
const ALIGN = 4096;

const { i32, u32, u64, i64, ptr: p } = FFIType;
const load = lazyLibc({
  memfd_create: { args: [p, u32], returns: i32 },
  ftruncate: { args: [i32, i64], returns: i32 },
  fcntl: { args: [i32, i32, i32], returns: i32 },
  mmap: { args: [p, u64, i32, i32, i32, i64], returns: p },
  close: { args: [i32], returns: i32 },
});

function mapFd(fd: number, bytes: number, writable: boolean): ArrayBuffer | undefined {
  const l = load();
  if (!l) return undefined;
  const addr = l.symbols.mmap!(null, bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  // MAP_FAILED is (void *)-1; bun:ffi returns pointers as numbers (null for 0).
  if (!addr || Number(addr) === -1 || Number(addr) === 2 ** 64 - 1) return undefined;
  return toArrayBuffer(addr, 0, bytes);
}

export interface Lease {
  /** A view of the region: read the bytes into it, then pass it (or a prefix subarray) in a request. */
  bytes: Uint8Array;
  /** Call once the request that carried it has settled. Idempotent. */
  release(): void;
}

/** Supervisor side: one region per host group, kept for the life of the process (never unmapped). */
export class SharedTransfer {
  readonly fd: number;
  readonly buffer: ArrayBuffer;
  /** Free regions [offset, length], sorted by offset, coalesced. */
  private free: [number, number][];
  readonly counters = { leases: 0, fallbacks: 0, inUse: 0, peak: 0 };

  private constructor(
    fd: number,
    buffer: ArrayBuffer,
    readonly size: number,
  ) {
    this.fd = fd;
    this.buffer = buffer;
    this.free = [[0, size]];
  }

  /** A sealed region of `bytes` (rounded up to 4 KiB), or undefined when memfd/mmap are unavailable. */
  static create(bytes: number, name = "outpost-transfer"): SharedTransfer | undefined {
    const l = load();
    if (!l) return undefined;
    const size = Math.ceil(bytes / ALIGN) * ALIGN;
    const fd = l.symbols.memfd_create!(
      ptr(new TextEncoder().encode(`${name}\0`)),
      MFD_CLOEXEC | MFD_ALLOW_SEALING,
    );
    if (fd < 0) return undefined;
    const buffer = l.symbols.ftruncate!(fd, size) === 0 ? mapFd(fd, size, true) : undefined;
    // Sealed after our mapping exists: it stays writable, every later one (the host's) cannot be.
    const sealed =
      buffer !== undefined &&
      l.symbols.fcntl!(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) ===
        0;
    if (!buffer || !sealed) {
      l.symbols.close!(fd);
      return undefined;
    }
    return new SharedTransfer(fd, buffer, size);
  }

  /** `length` bytes of the region, or undefined when none is free (send ordinary bytes instead). */
  lease(length: number): Lease | undefined {
    const want = Math.max(ALIGN, Math.ceil(length / ALIGN) * ALIGN);
    const i = this.free.findIndex(([, len]) => len >= want);
    if (i < 0) {
      this.counters.fallbacks++;
      return undefined;
    }
    const [offset, len] = this.free[i]!;
    if (len === want) this.free.splice(i, 1);
    else this.free[i] = [offset + want, len - want];
    this.counters.leases++;
    this.counters.inUse += want;
    this.counters.peak = Math.max(this.counters.peak, this.counters.inUse);
    let released = false;
    return {
      bytes: new Uint8Array(this.buffer, offset, length),
      release: () => {
        if (released) return;
        released = true;
        this.counters.inUse -= want;
        this.give(offset, want);
      },
    };
  }

  private give(offset: number, length: number): void {
    let i = 0;
    while (i < this.free.length && this.free[i]![0] < offset) i++;
    this.free.splice(i, 0, [offset, length]);
    // Coalesce with the neighbours.
    if (i + 1 < this.free.length && offset + length === this.free[i + 1]![0]) {
      this.free[i]![1] += this.free[i + 1]![1];
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1]![0] + this.free[i - 1]![1] === offset) {
      this.free[i - 1]![1] += this.free[i]![1];
      this.free.splice(i, 1);
    }
  }

  /** Bytes free now (tests, status). */
  get available(): number {
    return this.free.reduce((n, [, len]) => n + len, 0);
  }

  /** Is `view` a region of this transfer (so it can go by reference)? */
  owns(view: Uint8Array): boolean {
    return view.buffer === this.buffer;
  }
}

/**
 * Host side: maps the region the supervisor passed (TRANSFER_ENV, fd 3) read-only. Called before
 * Landlock is applied (it needs no path either way). Undefined when none was passed.
 */
export function attachSharedTransfer(
  env: Record<string, string | undefined> = process.env,
): ArrayBuffer | undefined {
  const spec = env[TRANSFER_ENV];
  if (!spec) return undefined;
  const [fd, bytes] = spec.split(":").map(Number);
  if (!Number.isInteger(fd) || !Number.isInteger(bytes) || fd! < 0 || bytes! <= 0) return undefined;
  return mapFd(fd!, bytes!, false);
}

/** Reads one attachment reference against the host's mapping; undefined when it is out of bounds. */
export function sharedView(buffer: ArrayBuffer | undefined, ref: unknown): Uint8Array | undefined {
  if (!buffer || !Array.isArray(ref) || ref.length !== 2) return undefined;
  const [offset, length] = ref as [unknown, unknown];
  if (!Number.isInteger(offset) || !Number.isInteger(length)) return undefined;
  const o = offset as number;
  const n = length as number;
  if (o < 0 || n < 0 || o + n > buffer.byteLength) return undefined;
  return new Uint8Array(buffer, o, n);
}

/** Region size for a group that gets one: a scan chunk (8 MiB) plus on-access batches in flight. */
export const GROUP_TRANSFER_BYTES = 16 * 1024 * 1024;

/**
 * The supervisor's regions, one per host group whose handlers all have no filesystem access (they are
 * handed bytes by requesters; a group that reads its own files gains nothing). Created at the group's
 * first spawn and handed to every later process of that group, so a restart after a crash reuses it.
 */
export class TransferPool {
  private readonly regions = new Map<string, SharedTransfer | null>();

  constructor(private readonly bytes = GROUP_TRANSFER_BYTES) {}

  /** For a spawn of `group`: its region, created now if its handlers qualify. */
  forSpawn(group: string, manifests: { privileges: { fs: { mode: string } } }[]): SharedTransfer | undefined {
    if (!this.regions.has(group)) {
      const wanted =
        this.bytes > 0 && manifests.length > 0 && manifests.every((m) => m.privileges.fs.mode === "none");
      this.regions.set(
        group,
        wanted ? (SharedTransfer.create(this.bytes, `outpost-${group}`) ?? null) : null,
      );
    }
    return this.regions.get(group) ?? undefined;
  }

  /** The region of a running group, if it has one. */
  of(group: string): SharedTransfer | undefined {
    return this.regions.get(group) ?? undefined;
  }
}
