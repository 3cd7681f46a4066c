/**
 * Reads `reputation.bin` in place. `validateReputation` is the thorough O(n)
 * check run before a switch (header, directory, strict key order, score
 * range, names); `ReputationDb.from` repeats only the O(1) header checks the
 * lookups' memory safety depends on and then serves lookups from typed-array
 * views over the very bytes it was given.
 */
import { HandlerError } from "../../core/errors.ts";
import {
  type Band,
  bandOf,
  CLASSES,
  canonicalBucketBits,
  FORMAT_VERSION,
  HEADER_BYTES,
  keyWords,
  type Layout,
  layoutFor,
  MAGIC,
  MAX_ENTRIES,
  OFFSET,
  type ReputationClass,
  type TableLayout,
} from "./format.ts";

export function invalid(
  file: string,
  reason: string,
  message: string,
  details: Record<string, unknown> = {},
) {
  return new HandlerError("HND_REP_INVALID", `${file}: ${message}`, {
    file,
    details: { reason, ...details },
  });
}

export interface RepHeader {
  hashCount: number;
  signerCount: number;
  namesBytes: number;
  hashBits: number;
  signerBits: number;
  layout: Layout;
}

function readHeader(bytes: Uint8Array, file: string): RepHeader {
  if (bytes.length < HEADER_BYTES) throw invalid(file, "truncated", `truncated: ${bytes.length} bytes`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw invalid(file, "bad-magic", "bad magic: not an OPREP01 reputation file");
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const version = v.getUint16(OFFSET.version, true);
  if (version !== FORMAT_VERSION) {
    throw invalid(
      file,
      "unsupported-version",
      `format version ${version} (this agent reads ${FORMAT_VERSION})`,
    );
  }
  const hashCount = v.getUint32(OFFSET.hashCount, true);
  const signerCount = v.getUint32(OFFSET.signerCount, true);
  const namesBytes = v.getUint32(OFFSET.namesBytes, true);
  const hashBits = v.getUint8(OFFSET.hashBits);
  const signerBits = v.getUint8(OFFSET.signerBits);
  let reservedZero = v.getUint32(OFFSET.flags, true) === 0;
  for (let o = OFFSET.reserved; o < HEADER_BYTES; o++) if (bytes[o] !== 0) reservedZero = false;
  if (!reservedZero || hashCount > MAX_ENTRIES || signerCount > MAX_ENTRIES) {
    throw invalid(file, "bad-header", "bad header: flags/reserved not zero or counts out of range");
  }
  if (hashBits !== canonicalBucketBits(hashCount) || signerBits !== canonicalBucketBits(signerCount)) {
    throw invalid(file, "bucket-bits", "bucket bits are not canonical for the entry counts");
  }
  const layout = layoutFor(hashCount, signerCount, namesBytes);
  const declared = Number(v.getBigUint64(OFFSET.fileBytes, true));
  if (declared !== layout.fileBytes) {
    throw invalid(file, "bad-header", `declared length ${declared} ≠ ${layout.fileBytes} for the counts`);
  }
  if (bytes.length !== layout.fileBytes) {
    throw invalid(
      file,
      bytes.length < layout.fileBytes ? "truncated" : "trailing-bytes",
      `${bytes.length} bytes, layout needs ${layout.fileBytes}`,
    );
  }
  return { hashCount, signerCount, namesBytes, hashBits, signerBits, layout };
}

class Table {
  readonly dir: Uint32Array;
  readonly keys: Uint32Array;
  readonly scores: Uint8Array;
  readonly classes: Uint8Array;
  private readonly shift: number;

  constructor(
    bytes: Uint8Array,
    readonly count: number,
    readonly bits: number,
    t: TableLayout,
  ) {
    const base = bytes.byteOffset;
    this.dir = new Uint32Array(bytes.buffer, base + t.dirOffset, t.dirLength);
    this.keys = new Uint32Array(bytes.buffer, base + t.keysOffset, 4 * count);
    this.scores = new Uint8Array(bytes.buffer, base + t.scoresOffset, count);
    this.classes = new Uint8Array(bytes.buffer, base + t.classesOffset, count);
    this.shift = 32 - bits;
  }

  bucket(w0: number): number {
    return this.bits === 0 ? 0 : w0 >>> this.shift;
  }

  /** Index of the key, or -1. */
  find(w: Uint32Array): number {
    const k = this.keys;
    const b = this.bucket(w[0]!);
    let lo = this.dir[b]!;
    let hi = this.dir[b + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareAt(k, mid, w);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }
}

/** Queries per batch group: enough cache misses in flight to hide memory latency. */
const GROUP = 32;
const groupStarts = new Uint32Array(GROUP);
const groupEnds = new Uint32Array(GROUP);
/** Where the touch pass's sum goes (read by nobody; it keeps the loads from being optimised away). */
let sink = 0;
export const batchSink = (): number => sink;

/**
 * Batch form of Table.find: `queries` holds 4 key words per query, `out[i]`
 * the entry index or -1. A lookup at 10M entries is two dependent cache
 * misses (directory, then bucket); a group of queries reads all its
 * directory slots, then touches all its buckets, then searches, so the
 * loads of each pass are independent and overlap. Returns the hit count.
 */
function findMany(t: Table, queries: Uint32Array, out: Int32Array): number {
  const n = queries.length >>> 2;
  if (out.length < n) throw new RangeError(`out holds ${out.length} answers, ${n} queries`);
  const { dir, keys } = t;
  let found = 0;
  let touched = 0;
  for (let base = 0; base < n; base += GROUP) {
    const m = Math.min(GROUP, n - base);
    for (let j = 0; j < m; j++) {
      const b = t.bucket(queries[4 * (base + j)]!);
      groupStarts[j] = dir[b]!;
      groupEnds[j] = dir[b + 1]!;
    }
    // A bucket's ~10 keys span two or three cache lines: touch the first and the last.
    for (let j = 0; j < m; j++) {
      touched += (keys[4 * groupStarts[j]!] ?? 0) + (keys[4 * groupEnds[j]! - 4] ?? 0);
    }
    for (let j = 0; j < m; j++) {
      const q = 4 * (base + j);
      const w0 = queries[q]!;
      let k = groupStarts[j]!;
      const end = groupEnds[j]!;
      // ~8–16 keys per bucket: a linear scan on the first word, then the other three.
      while (k < end && keys[4 * k]! < w0) k++;
      let hit = -1;
      for (; k < end && keys[4 * k] === w0; k++) {
        const o = 4 * k;
        if (
          keys[o + 1] === queries[q + 1] &&
          keys[o + 2] === queries[q + 2] &&
          keys[o + 3] === queries[q + 3]
        ) {
          hit = k;
          break;
        }
      }
      out[base + j] = hit;
      if (hit >= 0) found++;
    }
  }
  sink = touched;
  return found;
}

/** Compares key `i` of `keys` with `w`: negative when the key sorts first. */
function compareAt(keys: Uint32Array, i: number, w: Uint32Array): number {
  const o = 4 * i;
  for (let j = 0; j < 4; j++) {
    const a = keys[o + j]!;
    const b = w[j]!;
    if (a !== b) return a < b ? -1 : 1;
  }
  return 0;
}

export interface Reputation {
  score: number;
  band: Band;
  class: ReputationClass | string;
}

export class ReputationDb {
  private readonly hashes: Table;
  private readonly signers: Table;
  private readonly nameOffsets: Uint32Array;
  private readonly names: Uint8Array;
  private readonly scratch = new Uint32Array(4);
  /** True when the input was not 4-byte aligned and had to be copied once. */
  readonly copied: boolean;

  private constructor(
    readonly bytes: Uint8Array,
    header: RepHeader,
    copied: boolean,
  ) {
    const L = header.layout;
    this.hashes = new Table(bytes, header.hashCount, header.hashBits, L.hash);
    this.signers = new Table(bytes, header.signerCount, header.signerBits, L.signer);
    this.nameOffsets = new Uint32Array(
      bytes.buffer,
      bytes.byteOffset + L.nameOffsets,
      header.signerCount + 1,
    );
    this.names = new Uint8Array(bytes.buffer, bytes.byteOffset + L.names, header.namesBytes);
    this.copied = copied;
  }

  /** Zero-copy when `bytes` is 4-byte aligned (files read or mapped whole always are). */
  static from(bytes: Uint8Array, opts: { file: string }): ReputationDb {
    const header = readHeader(bytes, opts.file);
    const aligned = bytes.byteOffset % 4 === 0;
    return new ReputationDb(aligned ? bytes : bytes.slice(), header, !aligned);
  }

  get hashCount(): number {
    return this.hashes.count;
  }
  get signerCount(): number {
    return this.signers.count;
  }
  get byteLength(): number {
    return this.bytes.length;
  }

  /** Reputation of a file by SHA-256 (hex); null when not listed or not a digest. */
  byHash(sha256: string): Reputation | null {
    return this.lookup(this.hashes, sha256);
  }

  /** Reputation of a signer by certificate SHA-256 (hex), with the signer's name. */
  bySigner(thumbprint: string): (Reputation & { name: string }) | null {
    if (!keyWords(thumbprint, this.scratch)) return null;
    const i = this.signers.find(this.scratch);
    if (i < 0) return null;
    const name = new TextDecoder().decode(
      this.names.subarray(this.nameOffsets[i]!, this.nameOffsets[i + 1]!),
    );
    return { ...this.entry(this.signers, i), name };
  }

  /**
   * Batch lookup by file hash, with no string or object per query: `keys`
   * holds 4 words per query (the first 16 digest bytes as little-endian u32,
   * see `keysFromDigests`); `scores[i]` becomes the entry's score (0–100) or
   * -1 when not listed. Returns how many are listed.
   */
  hashScores(keys: Uint32Array, scores: Int16Array): number {
    return this.scoresOf(this.hashes, keys, scores);
  }

  /** `hashScores` for signer certificate thumbprints. */
  signerScores(keys: Uint32Array, scores: Int16Array): number {
    return this.scoresOf(this.signers, keys, scores);
  }

  /** Entry indexes (or -1) for a batch of file-hash keys; pair with `hashEntry` for the class. */
  findHashes(keys: Uint32Array, out: Int32Array): number {
    return findMany(this.hashes, keys, out);
  }

  /** Score, band and class of file-hash entry `i` (from `findHashes`). */
  hashEntry(i: number): Reputation {
    return this.entry(this.hashes, i);
  }

  private index = new Int32Array(0);

  private scoresOf(t: Table, keys: Uint32Array, scores: Int16Array): number {
    const n = keys.length >>> 2;
    if (scores.length < n) throw new RangeError(`scores holds ${scores.length} answers, ${n} queries`);
    if (this.index.length < n) this.index = new Int32Array(n);
    const found = findMany(t, keys, this.index);
    const s = t.scores;
    const idx = this.index;
    for (let i = 0; i < n; i++) {
      const k = idx[i]!;
      scores[i] = k < 0 ? -1 : s[k]!;
    }
    return found;
  }

  private lookup(t: Table, hex: string): Reputation | null {
    if (hex.length !== 64 || !keyWords(hex, this.scratch)) return null;
    const i = t.find(this.scratch);
    return i < 0 ? null : this.entry(t, i);
  }

  private entry(t: Table, i: number): Reputation {
    const score = t.scores[i]!;
    const c = t.classes[i]!;
    return { score, band: bandOf(score), class: CLASSES[c] ?? `class-${c}` };
  }
}

/**
 * Batch keys from raw SHA-256 digests laid end to end (`stride` bytes apart,
 * 32 by default): the first 16 bytes of each as four little-endian words.
 */
export function keysFromDigests(digests: Uint8Array, stride = 32, out?: Uint32Array): Uint32Array {
  if (stride < 16) throw new RangeError("a key is the first 16 bytes of a digest");
  const n = Math.floor(digests.length / stride);
  const keys = out ?? new Uint32Array(4 * n);
  const d = digests;
  for (let i = 0; i < n; i++) {
    const o = i * stride;
    for (let w = 0; w < 4; w++) {
      const p = o + 4 * w;
      keys[4 * i + w] = (d[p]! | (d[p + 1]! << 8) | (d[p + 2]! << 16) | (d[p + 3]! << 24)) >>> 0;
    }
  }
  return keys;
}

/** The full check before a switch: everything lookups assume, over every entry. */
export function validateReputation(bytes: Uint8Array, opts: { file: string }): RepHeader {
  const file = opts.file;
  const header = readHeader(bytes, file);
  const buf = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const check = (name: string, count: number, bits: number, t: TableLayout) => {
    const table = new Table(buf, count, bits, t);
    const { dir, keys, scores } = table;
    if (dir[0] !== 0 || dir[dir.length - 1] !== count) {
      throw invalid(file, "directory", `${name} directory does not span the ${count} entries`);
    }
    for (let b = 0; b + 1 < dir.length; b++) {
      const lo = dir[b]!;
      const hi = dir[b + 1]!;
      if (hi < lo || hi > count)
        throw invalid(file, "directory", `${name} directory is not monotonic at bucket ${b}`);
      for (let i = lo; i < hi; i++) {
        if (table.bucket(keys[4 * i]!) !== b) {
          throw invalid(file, "directory", `${name} entry ${i} is in the wrong bucket`);
        }
      }
    }
    for (let i = 1; i < count; i++) {
      const o = 4 * i;
      let c = 0;
      for (let j = 0; j < 4 && c === 0; j++) {
        const a = keys[o - 4 + j]!;
        const bb = keys[o + j]!;
        c = a < bb ? -1 : a > bb ? 1 : 0;
      }
      if (c >= 0) {
        throw invalid(
          file,
          c === 0 ? "duplicate-entry" : "unsorted-entries",
          `${name} entries ${i - 1} and ${i} are ${c === 0 ? "equal" : "out of order"}`,
        );
      }
    }
    for (let i = 0; i < count; i++) {
      if (scores[i]! > 100)
        throw invalid(file, "bad-score", `${name} entry ${i} has score ${scores[i]} > 100`);
    }
  };
  check("hash", header.hashCount, header.hashBits, header.layout.hash);
  check("signer", header.signerCount, header.signerBits, header.layout.signer);
  const L = header.layout;
  const offsets = new Uint32Array(buf.buffer, buf.byteOffset + L.nameOffsets, header.signerCount + 1);
  if (offsets[0] !== 0 || offsets[header.signerCount] !== header.namesBytes) {
    throw invalid(file, "names", "signer-name offsets do not span the name blob");
  }
  for (let i = 0; i < header.signerCount; i++) {
    if (offsets[i + 1]! < offsets[i]!)
      throw invalid(file, "names", `signer-name offset ${i + 1} goes backwards`);
  }
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(L.names, L.names + header.namesBytes));
  } catch {
    throw invalid(file, "names", "signer names are not valid UTF-8");
  }
  // Padding between sections must be zero, so the file has one canonical form.
  for (const [from, to] of [
    [L.hash.end, L.signer.dirOffset],
    [L.signer.end, L.nameOffsets],
  ] as const) {
    for (let o = from; o < to; o++)
      if (buf[o] !== 0) throw invalid(file, "bad-padding", `non-zero padding at ${o}`);
  }
  return header;
}
