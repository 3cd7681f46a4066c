/**
 * The LocalRepData file (`reputation.bin`), format version 1: two sorted
 * tables — reputation by file SHA-256 and by signer certificate — laid out
 * so the agent reads them in place (typed-array views over the file bytes,
 * or over an mmap of it), with no parsing at load. Specification and the
 * security argument for 128-bit keys: docs/scanning.md ("LocalRepData").
 *
 *   offset  size              field (integers little-endian)
 *   0       8                 magic "OPREP01\0"
 *   8       2                 format version = 1
 *   10      1                 bh: hash-table bucket bits  = canonicalBucketBits(n)
 *   11      1                 bs: signer-table bucket bits = canonicalBucketBits(m)
 *   12      4                 flags = 0
 *   16      4                 n: hash entries
 *   20      4                 m: signer entries
 *   24      8                 file length
 *   32      4                 signer-name blob length in bytes
 *   36      28                reserved = 0
 *   64      4·(2^bh+1)        hash directory: first entry index of each bucket; last = n
 *   …       16·n              hash keys (see below), strictly increasing
 *   …       n                 hash scores (0–100)
 *   …       n                 hash classes
 *   (pad to 8) then the signer table, same shape with bs and m,
 *   (pad to 4) u32·(m+1)      signer-name offsets into the blob (last = blob length)
 *   …                         signer-name blob (UTF-8)
 *
 * A key is the first 16 bytes of a SHA-256 digest (of the file, or of the
 * signer certificate's DER), read as four little-endian u32 words
 * w0…w3; keys sort by (w0, w1, w2, w3) unsigned and the bucket of a key is
 * w0's top `b` bits. 18 bytes per entry plus ≤ 0.5 for the directory.
 */

export const MAGIC = new Uint8Array([0x4f, 0x50, 0x52, 0x45, 0x50, 0x30, 0x31, 0x00]); // "OPREP01\0"
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 64;
export const KEY_BYTES = 16;
export const MAX_BUCKET_BITS = 24;
export const MAX_ENTRIES = 0x7fff_ffff;
export const PAYLOAD_FILE = "reputation.bin";

export const OFFSET = {
  version: 8,
  hashBits: 10,
  signerBits: 11,
  flags: 12,
  hashCount: 16,
  signerCount: 20,
  fileBytes: 24,
  namesBytes: 32,
  reserved: 36,
} as const;

/** Reputation classes (one byte per entry). */
export const CLASSES = ["unspecified", "system", "application", "pua", "malware"] as const;
export type ReputationClass = (typeof CLASSES)[number];

/** Score bands; "high" is what exempts from cloud lookups and cleanup. */
export const HIGH_SCORE = 80;
export const MEDIUM_SCORE = 40;
export type Band = "high" | "medium" | "low" | "unknown";

export function bandOf(score: number | null): Band {
  if (score === null) return "unknown";
  return score >= HIGH_SCORE ? "high" : score >= MEDIUM_SCORE ? "medium" : "low";
}

/** Average bucket load λ ∈ (8, 16]: ≤ 0.5 directory bytes per entry, 3–4 binary-search steps. */
export function canonicalBucketBits(entries: number): number {
  if (entries <= 16) return 0;
  const ceilLog2 = 32 - Math.clz32(entries - 1);
  return Math.min(MAX_BUCKET_BITS, ceilLog2 - 4);
}

export interface TableLayout {
  dirOffset: number;
  dirLength: number;
  keysOffset: number;
  scoresOffset: number;
  classesOffset: number;
  end: number;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

function table(start: number, entries: number, bits: number): TableLayout {
  const dirLength = 2 ** bits + 1;
  const keysOffset = start + 4 * dirLength;
  const scoresOffset = keysOffset + KEY_BYTES * entries;
  const classesOffset = scoresOffset + entries;
  return {
    dirOffset: start,
    dirLength,
    keysOffset,
    scoresOffset,
    classesOffset,
    end: classesOffset + entries,
  };
}

export interface Layout {
  hash: TableLayout;
  signer: TableLayout;
  nameOffsets: number;
  names: number;
  fileBytes: number;
}

export function layoutFor(hashCount: number, signerCount: number, namesBytes: number): Layout {
  const hash = table(HEADER_BYTES, hashCount, canonicalBucketBits(hashCount));
  const signer = table(align(hash.end, 8), signerCount, canonicalBucketBits(signerCount));
  const nameOffsets = align(signer.end, 4);
  const names = nameOffsets + 4 * (signerCount + 1);
  return { hash, signer, nameOffsets, names, fileBytes: names + namesBytes };
}

/** The key words of a hex digest (≥ 32 hex digits); null when it is not hex. */
export function keyWords(hex: string, out: Uint32Array): boolean {
  if (hex.length < 32) return false;
  for (let w = 0; w < 4; w++) {
    let v = 0;
    for (let b = 0; b < 4; b++) {
      const i = 8 * w + 2 * b;
      const hi = hexNibble(hex.charCodeAt(i));
      const lo = hexNibble(hex.charCodeAt(i + 1));
      if (hi < 0 || lo < 0) return false;
      v |= ((hi << 4) | lo) << (8 * b);
    }
    out[w] = v >>> 0;
  }
  return true;
}

function hexNibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

export const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
