/**
 * The Hmpa_data allowlist file (`allowlist.bin`), format version 1.
 * Full specification and the false-positive math: docs/hmpa-format.md.
 *
 * A thumbprint is an opaque string (the mitigation name may be part of it,
 * e.g. "StackPivot:3f9a…"). It is normalised (see `normalizeThumbprint`),
 * UTF-8 encoded and hashed with SHA-256; the first 8 digest bytes, read
 * big-endian, are its 64-bit fingerprint `fp`.
 *
 * The file stores, per distinct fingerprint, only the `b + 40` top bits:
 * the top `b` bits select a bucket (implicit, via a directory of start
 * indexes) and the next 40 bits — the *remainder* — are stored as a 32-bit
 * tag plus an 8-bit extension, in two parallel arrays so that the tags are
 * a zero-copy, aligned Uint32Array over the file bytes.
 *
 *   offset  size        field (all integers little-endian)
 *   0       8           magic "OPHMPA1\0"
 *   8       2           format version = 1
 *   10      1           b, bucket bits = canonicalBucketBits(n)
 *   11      1           remainder bits = 40
 *   12      4           flags = 0 (reserved)
 *   16      4           n, entry count (distinct stored keys)
 *   20      4           reserved = 0
 *   24      8           file length in bytes
 *   32      32          SHA-256 of bytes [0, 32) ‖ [64, end)
 *   64      4·(2^b+1)   directory: dir[k] = index of the first entry of bucket k; dir[2^b] = n
 *   …       4·n         tags: remainder >>> 8, i.e. fp bits 63-b … 32-b
 *   …       1·n         exts: remainder & 0xff, i.e. fp bits 31-b … 24-b
 *
 * Within a bucket, entries are strictly increasing by (tag, ext). Cost:
 * 5 bytes per entry plus a directory of 4/λ bytes per entry where
 * λ = n / 2^b ∈ (8, 16], so 5.25–5.5 bytes per entry. A lookup of a
 * non-member matches with probability ≤ n / 2^(b+40) ≤ 2^-36 (n ≤ 2^28) and
 * ≤ 2^-32 for every n < 2^32.
 */

export const MAGIC = new Uint8Array([0x4f, 0x50, 0x48, 0x4d, 0x50, 0x41, 0x31, 0x00]); // "OPHMPA1\0"
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 64;
/** Bits of each fingerprint stored after the bucket bits: a 32-bit tag and an 8-bit extension. */
export const REMAINDER_BITS = 40;
/** Past 2^24 buckets the directory would outgrow the entries it indexes; buckets grow instead. */
export const MAX_BUCKET_BITS = 24;
/** The directory holds uint32 indexes; the entry count is a uint32. */
export const MAX_ENTRIES = 0xffff_ffff;
/** Longer strings are not thumbprints (they are rejected by the builder and never match). */
export const MAX_THUMBPRINT_LENGTH = 4096;

export const PAYLOAD_FILE = "allowlist.bin";

export const OFFSET = {
  magic: 0,
  version: 8,
  bucketBits: 10,
  remainderBits: 11,
  flags: 12,
  entryCount: 16,
  reserved: 20,
  fileBytes: 24,
  checksum: 32,
  directory: HEADER_BYTES,
} as const;

/**
 * Target average bucket load λ ∈ (8, 16]: the directory costs ≤ 0.5 byte per
 * entry and a bucket is a 3–4 step binary search, while the FP bound stays
 * ≤ 16 · 2^-40 = 2^-36.
 */
export function canonicalBucketBits(entryCount: number): number {
  if (entryCount <= 16) return 0;
  const ceilLog2 = 32 - Math.clz32(entryCount - 1); // exact for 2 ≤ n ≤ 2^32
  return Math.min(MAX_BUCKET_BITS, ceilLog2 - 4);
}

export interface Layout {
  directoryOffset: number;
  directoryLength: number; // in uint32 slots: 2^b + 1
  tagsOffset: number;
  extsOffset: number;
  fileBytes: number;
}

export function layoutFor(entryCount: number, bucketBits: number): Layout {
  const directoryLength = 2 ** bucketBits + 1;
  const tagsOffset = HEADER_BYTES + 4 * directoryLength;
  const extsOffset = tagsOffset + 4 * entryCount;
  return {
    directoryOffset: HEADER_BYTES,
    directoryLength,
    tagsOffset,
    extsOffset,
    fileBytes: extsOffset + entryCount,
  };
}

/** Per-lookup false-positive probability for a non-member: n / 2^(b+40) (docs/hmpa-format.md). */
export function falsePositiveBound(entryCount: number, bucketBits: number): number {
  return entryCount / 2 ** (bucketBits + REMAINDER_BITS);
}

const HEX_TAIL = /^[0-9A-Fa-f]+$/;
const HAS_UPPER_HEX = /[A-F]/;

/**
 * The canonical form a thumbprint is hashed in, so that producers that differ
 * only in cosmetics agree:
 *  1. leading/trailing whitespace is removed (String.prototype.trim);
 *  2. non-ASCII text is Unicode NFC-normalised;
 *  3. the part after the last ":" (the whole string when there is none) is
 *     lower-cased when it consists only of hex digits — hex is case-free,
 *     everything else (mitigation names, paths) stays case-sensitive.
 * Returns "" for a string that normalises to nothing.
 */
export function normalizeThumbprint(thumbprint: string): string {
  // normalize() returns ASCII strings as they are, and is cheaper than scanning
  // for non-ASCII ourselves; the regexes run on the tail only.
  const s = thumbprint.trim().normalize("NFC");
  const colon = s.lastIndexOf(":");
  const tail = colon < 0 ? s : s.slice(colon + 1);
  if (!HAS_UPPER_HEX.test(tail) || !HEX_TAIL.test(tail)) return s;
  return s.slice(0, colon + 1) + tail.toLowerCase();
}

/** True when `normalized` may be stored: non-empty and at most MAX_THUMBPRINT_LENGTH long. */
export function isStorableThumbprint(normalized: string): boolean {
  return normalized.length > 0 && normalized.length <= MAX_THUMBPRINT_LENGTH;
}

const digestScratch = new Uint8Array(32);

/**
 * Hashes an already-normalised thumbprint and returns its fingerprint as two
 * uint32 halves (hi = digest bytes 0–3, lo = bytes 4–7, big-endian), written
 * into `out` so the hot path allocates nothing.
 */
export function fingerprintParts(normalized: string, out: Uint32Array): void {
  // Bun.SHA256.hash encodes strings as UTF-8 (lone surrogates → U+FFFD).
  Bun.SHA256.hash(normalized, digestScratch);
  const d = digestScratch;
  out[0] = ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
  out[1] = ((d[4]! << 24) | (d[5]! << 16) | (d[6]! << 8) | d[7]!) >>> 0;
}

/** The 64-bit fingerprint of a thumbprint (normalised first), for tooling and tests. */
export function thumbprintFingerprint(thumbprint: string): bigint {
  const parts = new Uint32Array(2);
  fingerprintParts(normalizeThumbprint(thumbprint), parts);
  return (BigInt(parts[0]!) << 32n) | BigInt(parts[1]!);
}

/** Bun targets are little-endian; the zero-copy typed-array views rely on it. */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** SHA-256 over the whole file except the checksum field itself (bytes 32–63). */
export function computeChecksum(file: Uint8Array): Uint8Array {
  const hasher = new Bun.CryptoHasher("sha256");
  hasher.update(file.subarray(0, OFFSET.checksum));
  hasher.update(file.subarray(HEADER_BYTES));
  return new Uint8Array(hasher.digest());
}
