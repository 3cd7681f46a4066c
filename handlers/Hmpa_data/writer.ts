/**
 * Builds `allowlist.bin` (format: ./format.ts, docs/hmpa-format.md). The
 * builder is the only place that sorts and deduplicates, so the reader can
 * map the file as-is.
 */
import { HandlerError } from "../../core/errors.ts";
import {
  canonicalBucketBits,
  computeChecksum,
  FORMAT_VERSION,
  fingerprintParts,
  HOST_LITTLE_ENDIAN,
  isStorableThumbprint,
  layoutFor,
  MAGIC,
  MAX_ENTRIES,
  MAX_THUMBPRINT_LENGTH,
  normalizeThumbprint,
  OFFSET,
  REMAINDER_BITS,
} from "./format.ts";

function requireLittleEndian(): void {
  if (!HOST_LITTLE_ENDIAN) {
    throw new HandlerError("HND_HMPA_UNSUPPORTED_HOST", "Hmpa_data allowlists need a little-endian host");
  }
}

/**
 * Hashes thumbprints into 64-bit fingerprints, consuming the iterable lazily
 * so that 10M+ inputs never have to be held as strings at once.
 */
export function fingerprintsOf(thumbprints: Iterable<string>): BigUint64Array {
  requireLittleEndian();
  let fps = new BigUint64Array(1024);
  // On a little-endian host, word 2i is the low half of fps[i] and 2i+1 the high half.
  let words = new Uint32Array(fps.buffer);
  const parts = new Uint32Array(2);
  let count = 0;
  for (const raw of thumbprints) {
    const normalized = normalizeThumbprint(raw);
    if (!isStorableThumbprint(normalized)) {
      throw new HandlerError(
        "HND_HMPA_BAD_THUMBPRINT",
        `thumbprint #${count + 1} is ${normalized.length === 0 ? "empty" : `longer than ${MAX_THUMBPRINT_LENGTH} characters`}`,
        { details: { index: count } },
      );
    }
    if (count === fps.length) {
      const grown = new BigUint64Array(fps.length * 2);
      grown.set(fps);
      fps = grown;
      words = new Uint32Array(fps.buffer);
    }
    fingerprintParts(normalized, parts);
    words[2 * count] = parts[1]!;
    words[2 * count + 1] = parts[0]!;
    count++;
  }
  return fps.subarray(0, count);
}

/**
 * Removes adjacent entries of a sorted fingerprint array that agree on their
 * top `64 - dropLowBits` bits, in place; returns the new length.
 */
function compactSorted(words: Uint32Array, count: number, dropLowBits: number): number {
  if (count === 0) return 0;
  let kept = 1;
  let prevHi = words[1]!;
  let prevLo = words[0]! >>> dropLowBits;
  for (let i = 1; i < count; i++) {
    const hi = words[2 * i + 1]!;
    const lo = words[2 * i]!;
    if (hi === prevHi && lo >>> dropLowBits === prevLo) continue;
    words[2 * kept] = lo;
    words[2 * kept + 1] = hi;
    kept++;
    prevHi = hi;
    prevLo = lo >>> dropLowBits;
  }
  return kept;
}

/**
 * Encodes fingerprints (in any order, duplicates allowed) as an allowlist
 * file. Sorts and compacts `fingerprints` in place.
 */
export function buildAllowlistFromFingerprints(fingerprints: BigUint64Array): Uint8Array {
  requireLittleEndian();
  fingerprints.sort();
  const words = new Uint32Array(fingerprints.buffer, fingerprints.byteOffset, fingerprints.length * 2);
  let count = compactSorted(words, fingerprints.length, 0);
  // Two distinct fingerprints can share their stored b+40 bits; they collapse
  // into one entry (both stay members). If that drops n below a power of two
  // the canonical b shrinks, so iterate to the fixed point (b only decreases).
  let bucketBits = canonicalBucketBits(count);
  for (;;) {
    count = compactSorted(words, count, 64 - bucketBits - REMAINDER_BITS);
    const settled = canonicalBucketBits(count);
    if (settled === bucketBits) break;
    bucketBits = settled;
  }
  if (count > MAX_ENTRIES) {
    throw new HandlerError(
      "HND_HMPA_TOO_LARGE",
      `allowlist has ${count} entries; the format holds ${MAX_ENTRIES}`,
    );
  }

  const layout = layoutFor(count, bucketBits);
  const file = new Uint8Array(layout.fileBytes);
  const header = new DataView(file.buffer);
  file.set(MAGIC, OFFSET.magic);
  header.setUint16(OFFSET.version, FORMAT_VERSION, true);
  header.setUint8(OFFSET.bucketBits, bucketBits);
  header.setUint8(OFFSET.remainderBits, REMAINDER_BITS);
  header.setUint32(OFFSET.flags, 0, true);
  header.setUint32(OFFSET.entryCount, count, true);
  header.setUint32(OFFSET.reserved, 0, true);
  header.setBigUint64(OFFSET.fileBytes, BigInt(layout.fileBytes), true);

  const directory = new Uint32Array(file.buffer, layout.directoryOffset, layout.directoryLength);
  const tags = new Uint32Array(file.buffer, layout.tagsOffset, count);
  const exts = file.subarray(layout.extsOffset, layout.extsOffset + count);
  const bucketShift = 32 - bucketBits;
  const extShift = 24 - bucketBits;
  for (let i = 0; i < count; i++) {
    const hi = words[2 * i + 1]!;
    const lo = words[2 * i]!;
    // `x >>> 32` is `x` in JS, so b = 0 needs its own branch.
    if (bucketBits === 0) {
      tags[i] = hi;
    } else {
      directory[(hi >>> bucketShift) + 1]!++;
      tags[i] = ((hi << bucketBits) | (lo >>> bucketShift)) >>> 0;
    }
    exts[i] = (lo >>> extShift) & 0xff;
  }
  if (bucketBits === 0) directory[1] = count;
  for (let k = 1; k < layout.directoryLength; k++) directory[k]! += directory[k - 1]!;

  file.set(computeChecksum(file), OFFSET.checksum);
  return file;
}

/** Builds an allowlist file from thumbprints (normalised, hashed, deduplicated). */
export function buildAllowlist(thumbprints: Iterable<string>): Uint8Array {
  return buildAllowlistFromFingerprints(fingerprintsOf(thumbprints));
}
