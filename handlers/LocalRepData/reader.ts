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
