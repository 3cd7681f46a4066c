/**
 * Reads `allowlist.bin` without parsing it: the directory and tags are
 * Uint32Array views and the extensions a Uint8Array view over the file
 * bytes. `validateAllowlist` is the thorough check the handler runs before a
 * switch; `Allowlist.from` repeats only the O(1) header checks a lookup's
 * memory safety depends on.
 */
import { HandlerError } from "../../core/errors.ts";
import {
  canonicalBucketBits,
  computeChecksum,
  FORMAT_VERSION,
  falsePositiveBound,
  fingerprintParts,
  HEADER_BYTES,
  HOST_LITTLE_ENDIAN,
  isStorableThumbprint,
  type Layout,
  layoutFor,
  MAGIC,
  MAX_BUCKET_BITS,
  normalizeThumbprint,
  OFFSET,
  PAYLOAD_FILE,
  REMAINDER_BITS,
} from "./format.ts";

/** Stable `details.reason` values of HND_HMPA_INVALID. */
export type InvalidReason =
  | "missing-file"
  | "truncated"
  | "trailing-bytes"
  | "bad-magic"
  | "unsupported-version"
  | "bad-header"
  | "bucket-bits"
  | "checksum-mismatch"
  | "directory"
  | "unsorted-entries"
  | "duplicate-entry";

export function invalid(
  file: string,
  reason: InvalidReason,
  message: string,
  details: Record<string, unknown> = {},
) {
  return new HandlerError("HND_HMPA_INVALID", `${file}: ${message}`, {
    file,
    details: { reason, ...details },
  });
}

export interface AllowlistHeader {
  version: number;
  bucketBits: number;
  entryCount: number;
  fileBytes: number;
  layout: Layout;
}

/** The O(1) checks: everything that decides where the arrays are and how big they are. */
function readHeader(bytes: Uint8Array, file: string): AllowlistHeader {
  if (bytes.length < HEADER_BYTES) {
    throw invalid(file, "truncated", `truncated: ${bytes.length} bytes, the header alone is ${HEADER_BYTES}`);
  }
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw invalid(file, "bad-magic", "bad magic: not an OPHMPA1 allowlist");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const version = view.getUint16(OFFSET.version, true);
  if (version !== FORMAT_VERSION) {
    throw invalid(
      file,
      "unsupported-version",
      `unsupported format version ${version} (this agent reads ${FORMAT_VERSION})`,
      {
        version,
      },
    );
  }
  const bucketBits = view.getUint8(OFFSET.bucketBits);
  const remainderBits = view.getUint8(OFFSET.remainderBits);
  const flags = view.getUint32(OFFSET.flags, true);
  const reserved = view.getUint32(OFFSET.reserved, true);
  if (remainderBits !== REMAINDER_BITS || flags !== 0 || reserved !== 0 || bucketBits > MAX_BUCKET_BITS) {
    throw invalid(
      file,
      "bad-header",
      "bad header: remainder bits, flags, reserved or bucket bits out of range",
      {
        remainderBits,
        flags,
        reserved,
        bucketBits,
      },
    );
  }
  const entryCount = view.getUint32(OFFSET.entryCount, true);
  const expectedBits = canonicalBucketBits(entryCount);
  if (bucketBits !== expectedBits) {
    // The FP bound in the docs assumes the canonical bucket count.
    throw invalid(
      file,
      "bucket-bits",
      `bucket bits ${bucketBits} is not canonical for ${entryCount} entries`,
      {
        bucketBits,
        expected: expectedBits,
      },
    );
  }
  const layout = layoutFor(entryCount, bucketBits);
  const declaredBytes = Number(view.getBigUint64(OFFSET.fileBytes, true));
  if (declaredBytes !== layout.fileBytes) {
    throw invalid(
      file,
      "bad-header",
      `bad header: declared length ${declaredBytes} ≠ ${layout.fileBytes} for ${entryCount} entries`,
      { declaredBytes, expectedBytes: layout.fileBytes },
    );
  }
  if (bytes.length < layout.fileBytes) {
    throw invalid(file, "truncated", `truncated: ${bytes.length} of ${layout.fileBytes} bytes`, {
      actualBytes: bytes.length,
      expectedBytes: layout.fileBytes,
    });
  }
  if (bytes.length > layout.fileBytes) {
    throw invalid(
      file,
      "trailing-bytes",
      `${bytes.length - layout.fileBytes} trailing bytes after the entries`,
      {
        actualBytes: bytes.length,
        expectedBytes: layout.fileBytes,
      },
    );
  }
  return { version, bucketBits, entryCount, fileBytes: layout.fileBytes, layout };
}

/**
 * Every rule of the format, in the order a reader depends on them: header,
 * sizes, checksum, then the directory (starts at 0, ends at n, never
 * decreases) and the entries (strictly increasing by (tag, ext) within each
 * bucket, which also rules out duplicates). Throws HND_HMPA_INVALID with
 * `details.reason`.
 */
export function validateAllowlist(bytes: Uint8Array, opts: { file?: string } = {}): AllowlistHeader {
  const file = opts.file ?? PAYLOAD_FILE;
  const header = readHeader(bytes, file);
  const stored = bytes.subarray(OFFSET.checksum, HEADER_BYTES);
  const actual = computeChecksum(bytes);
  if (!stored.every((b, i) => b === actual[i])) {
    throw invalid(file, "checksum-mismatch", "checksum mismatch: the file is corrupt");
  }
  const { directory, tags, exts } = views(alignedForViews(bytes), header.layout, header.entryCount);
  const n = header.entryCount;
  if (directory[0] !== 0 || directory[directory.length - 1] !== n) {
    throw invalid(file, "directory", `directory must start at 0 and end at ${n}`, {
      first: directory[0],
      last: directory[directory.length - 1],
    });
  }
  for (let k = 1; k < directory.length; k++) {
    if (directory[k]! < directory[k - 1]!) {
      throw invalid(file, "directory", `directory decreases at bucket ${k}`, { bucket: k });
    }
  }
  for (let k = 1; k < directory.length; k++) {
    const start = directory[k - 1]!;
    const end = directory[k]!;
    for (let i = start + 1; i < end; i++) {
      const prevTag = tags[i - 1]!;
      const tag = tags[i]!;
      if (tag > prevTag) continue;
      const prevExt = exts[i - 1]!;
      const ext = exts[i]!;
      if (tag === prevTag && ext > prevExt) continue;
      if (tag === prevTag && ext === prevExt) {
        throw invalid(file, "duplicate-entry", `duplicate entry ${i} in bucket ${k - 1}`, {
          index: i,
          bucket: k - 1,
        });
      }
      throw invalid(file, "unsorted-entries", `entry ${i} is out of order in bucket ${k - 1}`, {
        index: i,
        bucket: k - 1,
      });
    }
  }
  return header;
}

/**
 * Typed-array views need 4-byte alignment. Files read from disk or sliced
 * from a tar (512-byte blocks) are aligned; anything else is copied once.
 */
function alignedForViews(bytes: Uint8Array): Uint8Array {
  if (!HOST_LITTLE_ENDIAN) {
    throw new HandlerError("HND_HMPA_UNSUPPORTED_HOST", "Hmpa_data allowlists need a little-endian host");
  }
  return bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
}

function views(bytes: Uint8Array, layout: Layout, entryCount: number) {
  const base = bytes.byteOffset;
  return {
    directory: new Uint32Array(bytes.buffer, base + layout.directoryOffset, layout.directoryLength),
    tags: new Uint32Array(bytes.buffer, base + layout.tagsOffset, entryCount),
    exts: new Uint8Array(bytes.buffer, base + layout.extsOffset, entryCount),
  };
}

/** Queries per batch group: enough misses in flight to hide memory latency, few enough to stay in registers and L1. */
const GROUP = 32;
/** Where the touch pass's sum goes (read by nobody; it keeps the loads from being optimised away). */
let sink = 0;
export const batchSink = (): number => sink;

export class Allowlist {
  private readonly parts = new Uint32Array(2);
  private readonly bucketShift: number;
  private readonly extShift: number;

  private constructor(
    private readonly bytes: Uint8Array,
    private readonly header: AllowlistHeader,
    private readonly directory: Uint32Array,
    private readonly tags: Uint32Array,
    private readonly exts: Uint8Array,
  ) {
    this.bucketShift = 32 - header.bucketBits;
    this.extShift = 24 - header.bucketBits;
  }

  /**
   * Maps a file without scanning it. Only the header and length are checked;
   * run `validateAllowlist` first on bytes that have not been validated (the
   * handler does, before the switch). The bytes must not change afterwards.
   */
  static from(bytes: Uint8Array, opts: { file?: string } = {}): Allowlist {
    const header = readHeader(bytes, opts.file ?? PAYLOAD_FILE);
    const aligned = alignedForViews(bytes);
    const { directory, tags, exts } = views(aligned, header.layout, header.entryCount);
    return new Allowlist(aligned, header, directory, tags, exts);
  }

  /** Distinct stored entries (thumbprints whose kept bits coincide count once). */
  get size(): number {
    return this.header.entryCount;
  }

  get byteLength(): number {
    return this.bytes.length;
  }

  get bytesPerEntry(): number {
    return this.header.entryCount === 0 ? 0 : this.bytes.length / this.header.entryCount;
  }

  get bucketBits(): number {
    return this.header.bucketBits;
  }

  /** Per-lookup false-positive bound for a non-member, n / 2^(b+40). */
  get falsePositiveBound(): number {
    return falsePositiveBound(this.header.entryCount, this.header.bucketBits);
  }

  /** Whether the thumbprint (any spelling that normalises the same) is allowlisted. */
  has(thumbprint: string): boolean {
    const normalized = normalizeThumbprint(thumbprint);
    if (!isStorableThumbprint(normalized)) return false;
    fingerprintParts(normalized, this.parts);
    return this.hasParts(this.parts[0]!, this.parts[1]!);
  }

  /**
   * Looks up a precomputed fingerprint: a 64-bit bigint, or bytes whose first
   * 8 are the fingerprint big-endian (a full SHA-256 digest works as is).
   */
  hasFingerprint(fingerprint: bigint | Uint8Array): boolean {
    if (typeof fingerprint === "bigint") {
      if (fingerprint < 0n || fingerprint > 0xffff_ffff_ffff_ffffn) return false;
      return this.hasParts(Number(fingerprint >> 32n), Number(fingerprint & 0xffff_ffffn));
    }
    if (fingerprint.length < 8) throw new RangeError("a fingerprint is 8 bytes");
    const f = fingerprint;
    const hi = ((f[0]! << 24) | (f[1]! << 16) | (f[2]! << 8) | f[3]!) >>> 0;
    const lo = ((f[4]! << 24) | (f[5]! << 16) | (f[6]! << 8) | f[7]!) >>> 0;
    return this.hasParts(hi, lo);
  }

  /**
   * Batch lookup over precomputed fingerprints: `words` holds (hi, lo) uint32
   * pairs, one per query; `out[i]` becomes 1 when query i is allowlisted,
   * else 0. Returns how many are. Nothing is allocated per query.
   *
   * At 10M entries a lookup is two dependent cache misses (directory, then
   * the bucket's tags), which one at a time leave the CPU waiting. Here a
   * group of queries first reads all its directory slots, then touches all
   * its buckets' first tags, then searches: the loads of each pass do not
   * depend on one another, so the CPU has many misses in flight at once.
   */
  hasManyParts(words: Uint32Array, out: Uint8Array): number {
    const n = words.length >>> 1;
    if (out.length < n) throw new RangeError(`out holds ${out.length} answers, ${n} queries`);
    const b = this.header.bucketBits;
    if (b === 0) {
      let found = 0;
      for (let i = 0; i < n; i++) found += out[i] = this.hasParts(words[2 * i]!, words[2 * i + 1]!) ? 1 : 0;
      return found;
    }
    const { directory, tags, exts, bucketShift, extShift } = this;
    const starts = this.groupStarts;
    const ends = this.groupEnds;
    let found = 0;
    let touched = 0;
    for (let base = 0; base < n; base += GROUP) {
      const m = Math.min(GROUP, n - base);
      for (let j = 0; j < m; j++) {
        const bucket = words[2 * (base + j)]! >>> bucketShift;
        starts[j] = directory[bucket]!;
        ends[j] = directory[bucket + 1]!;
      }
      // Pull each bucket's first cache line in; the sum only keeps the loads from being dropped.
      for (let j = 0; j < m; j++) touched += tags[starts[j]!] ?? 0;
      for (let j = 0; j < m; j++) {
        const i = base + j;
        const hi = words[2 * i]!;
        const lo = words[2 * i + 1]!;
        const tag = ((hi << b) | (lo >>> bucketShift)) >>> 0;
        const ext = (lo >>> extShift) & 0xff;
        let k = starts[j]!;
        const end = ends[j]!;
        // Buckets hold ~8–16 tags in one or two cache lines: a linear scan beats branching.
        while (k < end && tags[k]! < tag) k++;
        let hit = 0;
        for (; k < end && tags[k] === tag; k++) {
          if (exts[k] === ext) {
            hit = 1;
            break;
          }
        }
        out[i] = hit;
        found += hit;
      }
    }
    sink = touched;
    return found;
  }

  private readonly groupStarts = new Uint32Array(GROUP);
  private readonly groupEnds = new Uint32Array(GROUP);

  /** The lookup proper, on the fingerprint's uint32 halves. */
  hasParts(hi: number, lo: number): boolean {
    const b = this.header.bucketBits;
    let start: number;
    let end: number;
    let tag: number;
    if (b === 0) {
      start = 0;
      end = this.header.entryCount;
      tag = hi;
    } else {
      const bucket = hi >>> this.bucketShift;
      start = this.directory[bucket]!;
      end = this.directory[bucket + 1]!;
      tag = ((hi << b) | (lo >>> this.bucketShift)) >>> 0;
    }
    const ext = (lo >>> this.extShift) & 0xff;
    const bucketEnd = end;
    // Lower bound on tag; buckets hold ~8–16 entries, so this is 3–4 steps.
    const tags = this.tags;
    while (start < end) {
      const mid = (start + end) >>> 1;
      if (tags[mid]! < tag) start = mid + 1;
      else end = mid;
    }
    const exts = this.exts;
    // Equal tags (rare) are ordered by ext; never look past the bucket.
    for (let i = start; i < bucketEnd && tags[i] === tag; i++) {
      if (exts[i] === ext) return true;
    }
    return false;
  }
}
