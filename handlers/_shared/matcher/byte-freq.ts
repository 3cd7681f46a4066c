/**
 * The byte model anchors are chosen with: how many bits of surprise a byte
 * (unigram) and a byte following another (bigram) carry in real files,
 * measured on this machine's executables and data by scripts/byte-freq.ts
 * and committed as byte-freq.generated.ts. Decoded once, on first use.
 */
import { BYTE_MODEL_GZ_B64, BYTE_MODEL_SOURCE } from "./byte-freq.generated.ts";

export interface ByteModel {
  /** Eighths of a bit: -log2 p(b) × 8. */
  unigram: Uint8Array;
  /** Eighths of a bit: -log2 p(b | a) × 8, at (a << 8) | b. */
  bigram: Uint8Array;
  source: string;
}

let model: ByteModel | undefined;

export function loadByteModel(): ByteModel {
  if (model) return model;
  // Bun.gunzipSync, not node:zlib: node's zlib module loads the stream classes (core/stdio.ts).
  const t = Bun.gunzipSync(Buffer.from(BYTE_MODEL_GZ_B64, "base64"));
  if (t.length !== 256 + 65536) throw new Error(`byte model: ${t.length} bytes, expected ${256 + 65536}`);
  model = { unigram: t.subarray(0, 256), bigram: t.subarray(256), source: BYTE_MODEL_SOURCE };
  return model;
}

/**
 * Surprise of bytes[start … start+len) in eighths of a bit: the higher, the
 * rarer the window in real files. Masked bytes (mask ≠ 0xff) are not
 * allowed here: anchors are exact.
 */
export function windowBits(bytes: Uint8Array, start: number, len: number): number {
  const m = loadByteModel();
  let bits = m.unigram[bytes[start]!]!;
  for (let i = start + 1; i < start + len; i++) bits += m.bigram[(bytes[i - 1]! << 8) | bytes[i]!]!;
  return bits;
}
