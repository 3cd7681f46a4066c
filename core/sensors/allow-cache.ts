/**
 * Files the decider has allowed, shared between the main thread (which
 * writes them) and the access sensor's reader thread (which answers a
 * permission event for such a file itself, without waking the main thread).
 * The key is the file's exact identity and version — (dev, inode, mtime ns,
 * ctime ns, size) — compared in full, so a hit is never a collision: any
 * write, truncate, chmod or rename changes ctime and the file misses.
 *
 * Layout: SLOTS entries of 6 BigInt64 words [dev, ino, mtime, ctime, size,
 * generation + 1; 0 = never written] plus one Int32 sequence number per slot (a seqlock: odd while
 * the main thread writes the slot; the reader thread trusts a slot only if
 * the sequence was even and unchanged around its read, so it never acts on a
 * torn entry). `clear()` bumps the generation: every older entry misses at
 * once. A full probe window evicts its first slot (the table is a cache).
 */

const WORDS = 6;
/** Stored as signed 64-bit words; inode numbers and devices may use the top bit. */
const i64 = (x: bigint) => BigInt.asIntN(64, x);
const PROBE = 8;
/** Generation counter index in the Int32 view (after the per-slot sequence numbers). */
const GEN = 0;

export interface FileIdentity {
  dev: bigint;
  ino: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  size: bigint;
}

export class AllowCache {
  readonly buffer: SharedArrayBuffer;
  private readonly words: BigInt64Array;
  private readonly seq: Int32Array;
  private readonly meta: Int32Array;
  private readonly mask: number;

  /** `slots` must be a power of two. Pass `buffer` to attach to a table another thread created. */
  constructor(slots = 65_536, buffer?: SharedArrayBuffer) {
    if (slots & (slots - 1)) throw new Error("AllowCache: slots must be a power of two");
    this.buffer = buffer ?? new SharedArrayBuffer(slots * WORDS * 8 + slots * 4 + 8);
    this.words = new BigInt64Array(this.buffer, 0, slots * WORDS);
    this.seq = new Int32Array(this.buffer, slots * WORDS * 8, slots);
    this.meta = new Int32Array(this.buffer, slots * WORDS * 8 + slots * 4, 2);
    this.mask = slots - 1;
  }

  static slotsOf(buffer: SharedArrayBuffer): number {
    return (buffer.byteLength - 8) / (WORDS * 8 + 4);
  }

  private home(f: FileIdentity): number {
    // Inode and mtime spread entries; both are compared in full anyway.
    const h = Number(BigInt.asUintN(32, f.ino * 0x9e3779b1n + f.mtimeNs + f.dev * 31n));
    return Math.imul(h, 0x85ebca6b) >>> 0;
  }

  /** Main thread only (one writer). */
  add(f: FileIdentity): void {
    const gen = BigInt(Atomics.load(this.meta, GEN)) + 1n;
    const h = this.home(f);
    let slot = h & this.mask;
    for (let i = 0; i < PROBE; i++) {
      const s = (h + i) & this.mask;
      const w = s * WORDS;
      if (Atomics.load(this.words, w + 5) !== gen) {
        slot = s; // free, or left from an older generation
        break;
      }
      if (this.matches(w, f)) return;
    }
    const w = slot * WORDS;
    Atomics.add(this.seq, slot, 1); // odd: being written
    Atomics.store(this.words, w, i64(f.dev));
    Atomics.store(this.words, w + 1, i64(f.ino));
    Atomics.store(this.words, w + 2, i64(f.mtimeNs));
    Atomics.store(this.words, w + 3, i64(f.ctimeNs));
    Atomics.store(this.words, w + 4, i64(f.size));
    Atomics.store(this.words, w + 5, gen);
    Atomics.add(this.seq, slot, 1); // even: complete
  }

  /** Any thread. */
  has(f: FileIdentity): boolean {
    const gen = BigInt(Atomics.load(this.meta, GEN)) + 1n;
    const h = this.home(f);
    for (let i = 0; i < PROBE; i++) {
      const s = (h + i) & this.mask;
      const before = Atomics.load(this.seq, s);
      if (before & 1) continue;
      const w = s * WORDS;
      const hit = Atomics.load(this.words, w + 5) === gen && this.matches(w, f);
      if (hit && Atomics.load(this.seq, s) === before) return true;
    }
    return false;
  }

  /** Main thread only: forgets this one version of a file (written to since it was judged). */
  remove(f: FileIdentity): void {
    const h = this.home(f);
    const gen = BigInt(Atomics.load(this.meta, GEN)) + 1n;
    for (let i = 0; i < PROBE; i++) {
      const s = (h + i) & this.mask;
      const w = s * WORDS;
      if (Atomics.load(this.words, w + 5) !== gen || !this.matches(w, f)) continue;
      Atomics.add(this.seq, s, 1);
      Atomics.store(this.words, w + 5, 0n);
      Atomics.add(this.seq, s, 1);
    }
  }

  /** Forgets every entry (a new generation); entries added after this call count. */
  clear(): void {
    Atomics.add(this.meta, GEN, 1);
  }

  private matches(w: number, f: FileIdentity): boolean {
    return (
      Atomics.load(this.words, w + 1) === i64(f.ino) &&
      Atomics.load(this.words, w) === i64(f.dev) &&
      Atomics.load(this.words, w + 2) === i64(f.mtimeNs) &&
      Atomics.load(this.words, w + 3) === i64(f.ctimeNs) &&
      Atomics.load(this.words, w + 4) === i64(f.size)
    );
  }
}
