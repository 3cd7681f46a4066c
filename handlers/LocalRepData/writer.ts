/**
 * Builds `reputation.bin` (format.ts). Sorting is linear: keys are digests,
 * so a counting sort on the bucket bits spreads them evenly and each bucket
 * (≈ 8–16 keys) is finished by insertion sort. A key given twice keeps the
 * entry given last, so a later input file overrides an earlier one.
 */
import { HandlerError } from "../../core/errors.ts";
import {
  CLASSES,
  canonicalBucketBits,
  FORMAT_VERSION,
  keyWords,
  layoutFor,
  MAGIC,
  MAX_ENTRIES,
  OFFSET,
  type ReputationClass,
} from "./format.ts";

export interface TableInput {
  /** 4 key words per entry (format.ts), in input order. */
  keys: Uint32Array;
  scores: Uint8Array;
  classes: Uint8Array;
  /** Signer table only: one name per entry. */
  names?: string[];
}

export interface BuildResult {
  bytes: Uint8Array;
  hashEntries: number;
  signerEntries: number;
  /** Entries replaced by a later entry with the same key. */
  overridden: number;
}

function compare(k: Uint32Array, a: number, b: number): number {
  for (let j = 0; j < 4; j++) {
    const x = k[4 * a + j]!;
    const y = k[4 * b + j]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Sorted, de-duplicated order of the entries (indexes into the input). */
function sortedOrder(
  keys: Uint32Array,
  count: number,
  bits: number,
): { order: Uint32Array; dir: Uint32Array; overridden: number } {
  const buckets = 2 ** bits;
  const shift = 32 - bits;
  const bucketOf = (i: number) => (bits === 0 ? 0 : keys[4 * i]! >>> shift);
  const counts = new Uint32Array(buckets + 1);
  for (let i = 0; i < count; i++) counts[bucketOf(i) + 1]!++;
  for (let b = 0; b < buckets; b++) counts[b + 1]! += counts[b]!;
  const next = counts.slice(0, buckets);
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[next[bucketOf(i)]!++] = i;
  // Insertion sort per bucket; equal keys stay in input order, so the last one is the later entry.
  let overridden = 0;
  const keep = new Uint8Array(count).fill(1);
  for (let b = 0; b < buckets; b++) {
    const lo = counts[b]!;
    const hi = counts[b + 1]!;
    for (let i = lo + 1; i < hi; i++) {
      const v = order[i]!;
      let j = i - 1;
      while (j >= lo && compare(keys, order[j]!, v) > 0) {
        order[j + 1] = order[j]!;
        j--;
      }
      order[j + 1] = v;
    }
    for (let i = lo + 1; i < hi; i++) {
      if (compare(keys, order[i - 1]!, order[i]!) === 0) {
        keep[i - 1] = 0;
        overridden++;
      }
    }
  }
  if (overridden === 0) {
    return { order, dir: counts, overridden };
  }
  const out = new Uint32Array(count - overridden);
  const dir = new Uint32Array(buckets + 1);
  let w = 0;
  for (let b = 0; b < buckets; b++) {
    dir[b] = w;
    for (let i = counts[b]!; i < counts[b + 1]!; i++) if (keep[i]) out[w++] = order[i]!;
  }
  dir[buckets] = w;
  return { order: out, dir, overridden };
}

export function buildReputation(hashes: TableInput, signers: TableInput): BuildResult {
  const hCount = hashes.scores.length;
  const sCount = signers.scores.length;
  if (hCount > MAX_ENTRIES || sCount > MAX_ENTRIES) {
    throw new HandlerError("HND_REP_BUILD", `too many entries (max ${MAX_ENTRIES} per table)`);
  }
  for (const [name, t] of [
    ["hash", hashes],
    ["signer", signers],
  ] as const) {
    if (t.keys.length !== 4 * t.scores.length || t.classes.length !== t.scores.length) {
      throw new HandlerError("HND_REP_BUILD", `${name} table: keys, scores and classes differ in length`);
    }
    for (const s of t.scores)
      if (s > 100) throw new HandlerError("HND_REP_BUILD", `${name} table: score ${s} > 100`);
  }
  if ((signers.names?.length ?? 0) !== sCount) {
    throw new HandlerError("HND_REP_BUILD", "signer table: one name per entry required");
  }
  const h = sortedOrder(hashes.keys, hCount, canonicalBucketBits(hCount));
  // Bucket bits depend on the count after de-duplication.
  const hFinal = h.overridden
    ? sortedOrder(pick(hashes.keys, h.order), h.order.length, canonicalBucketBits(h.order.length))
    : h;
  const hOrder = h.overridden ? remap(h.order, hFinal.order) : h.order;
  const s = sortedOrder(signers.keys, sCount, canonicalBucketBits(sCount));
  const sFinal = s.overridden
    ? sortedOrder(pick(signers.keys, s.order), s.order.length, canonicalBucketBits(s.order.length))
    : s;
  const sOrder = s.overridden ? remap(s.order, sFinal.order) : s.order;

  const enc = new TextEncoder();
  const nameBytes = Array.from(sOrder, (i) => enc.encode(signers.names![i]!));
  const namesLength = nameBytes.reduce((n, b) => n + b.length, 0);
  const L = layoutFor(hOrder.length, sOrder.length, namesLength);
  const bytes = new Uint8Array(L.fileBytes);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  view.setUint16(OFFSET.version, FORMAT_VERSION, true);
  view.setUint8(OFFSET.hashBits, canonicalBucketBits(hOrder.length));
  view.setUint8(OFFSET.signerBits, canonicalBucketBits(sOrder.length));
  view.setUint32(OFFSET.hashCount, hOrder.length, true);
  view.setUint32(OFFSET.signerCount, sOrder.length, true);
  view.setBigUint64(OFFSET.fileBytes, BigInt(L.fileBytes), true);
  view.setUint32(OFFSET.namesBytes, namesLength, true);

  const writeTable = (t: TableInput, order: Uint32Array, dir: Uint32Array, layout: typeof L.hash) => {
    new Uint32Array(bytes.buffer, layout.dirOffset, layout.dirLength).set(dir);
    const keys = new Uint32Array(bytes.buffer, layout.keysOffset, 4 * order.length);
    for (let i = 0; i < order.length; i++) {
      const src = 4 * order[i]!;
      keys[4 * i] = t.keys[src]!;
      keys[4 * i + 1] = t.keys[src + 1]!;
      keys[4 * i + 2] = t.keys[src + 2]!;
      keys[4 * i + 3] = t.keys[src + 3]!;
      bytes[layout.scoresOffset + i] = t.scores[order[i]!]!;
      bytes[layout.classesOffset + i] = t.classes[order[i]!]!;
    }
  };
  writeTable(hashes, hOrder, hFinal.dir, L.hash);
  writeTable(signers, sOrder, sFinal.dir, L.signer);
  const offsets = new Uint32Array(bytes.buffer, L.nameOffsets, sOrder.length + 1);
  let o = 0;
  nameBytes.forEach((b, i) => {
    offsets[i] = o;
    bytes.set(b, L.names + o);
    o += b.length;
  });
  offsets[sOrder.length] = o;
  return {
    bytes,
    hashEntries: hOrder.length,
    signerEntries: sOrder.length,
    overridden: h.overridden + s.overridden,
  };
}

function pick(keys: Uint32Array, order: Uint32Array): Uint32Array {
  const out = new Uint32Array(4 * order.length);
  for (let i = 0; i < order.length; i++) out.set(keys.subarray(4 * order[i]!, 4 * order[i]! + 4), 4 * i);
  return out;
}

function remap(first: Uint32Array, second: Uint32Array): Uint32Array {
  return Uint32Array.from(second, (i) => first[i]!);
}

export interface RepEntryInput {
  /** SHA-256 hex of the file, or of the signer certificate. */
  sha256: string;
  score: number;
  class?: ReputationClass;
  name?: string;
}

/** Table input from a list of entries (the CLI path; the bench builds typed arrays directly). */
export function tableFromEntries(entries: RepEntryInput[], withNames: boolean): TableInput {
  const keys = new Uint32Array(4 * entries.length);
  const scores = new Uint8Array(entries.length);
  const classes = new Uint8Array(entries.length);
  const scratch = new Uint32Array(4);
  entries.forEach((e, i) => {
    if (!/^[0-9a-fA-F]{64}$/.test(e.sha256) || !keyWords(e.sha256, scratch)) {
      throw new HandlerError("HND_REP_BUILD", `entry ${i + 1}: '${e.sha256}' is not a SHA-256 hex digest`);
    }
    if (!Number.isInteger(e.score) || e.score < 0 || e.score > 100) {
      throw new HandlerError("HND_REP_BUILD", `entry ${i + 1}: score ${e.score} is not an integer 0–100`);
    }
    keys.set(scratch, 4 * i);
    scores[i] = e.score;
    const c = CLASSES.indexOf(e.class ?? "unspecified");
    if (c < 0) throw new HandlerError("HND_REP_BUILD", `entry ${i + 1}: unknown class '${e.class}'`);
    classes[i] = c;
  });
  return { keys, scores, classes, ...(withNames ? { names: entries.map((e) => e.name ?? "") } : {}) };
}
