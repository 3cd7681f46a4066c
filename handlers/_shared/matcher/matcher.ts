/**
 * Multi-pattern search over every body signature at once, built once at
 * load. Each signature contributes one anchor — its rarest 4 fixed bytes
 * (anchor.ts) — and a scan slides a 32-bit window over the data:
 *
 *   1. a hashed bitmap of the anchors (≤ 1 MiB, sized to stay in L2) says
 *      "maybe" for a ~1–2 % of positions and "no" for the rest;
 *   2. on "maybe", an open-addressed table of the exact anchor words gives
 *      the signatures whose anchor this is (usually none or one);
 *   3. each of those whose extension word (up to 4 more bytes beside the
 *      anchor) also matches is verified in full around the position (verify.ts).
 *
 * The per-byte cost is a shift, a multiply and one bit test, independent of
 * the number of signatures — the reason this replaced an Aho-Corasick
 * automaton, whose failure-link walks slowed to ~85 MB/s at 100k anchors
 * (docs/scanning.md has the measurements). Signatures with no 4 fixed bytes
 * in a row (ClamAV allows 2) use a second, 64 KiB direct table of 2-byte
 * prefixes that only runs when such signatures exist.
 */

export interface AnchorEntry {
  /** Anchor bytes as a big-endian integer (4-byte anchors) or first 2 bytes (short anchors). */
  key: number;
  /** Anchor length: 4, or 2–3 for short anchors. */
  length: number;
  /** Full anchor bytes (short anchors are compared in full on a hit). */
  bytes: Uint8Array;
  /** Index of the signature the anchor belongs to. */
  sig: number;
  /** Bytes beside the anchor (pattern.ts Anchor.ext), compared before the candidate is reported. */
  ext?: { offset: number; value: number; mask: number } | null;
}

/**
 * The index's own data in flat arrays — what a pack can store prebuilt and
 * a loader can take over without a JS object per anchor. Everything else
 * (bitmap filter, hash table) is derived from it in O(unique anchors).
 */
export interface AnchorColumns {
  /** Distinct 4-byte anchor words, strictly increasing. */
  keys: Uint32Array;
  /** CSR: the entries of keys[u] are listStart[u] … listStart[u+1]-1 (length keys.length + 1). */
  listStart: Uint32Array;
  listSigs: Uint32Array;
  /** Per entry: extension word offset from the anchor, value and mask (mask 0: none). */
  extOff: Int8Array;
  extVal: Uint32Array;
  extMask: Uint32Array;
  /** Signatures with a 2–3 byte anchor, and their bytes: 4 per signature, [length, b0, b1, b2]. */
  shortSigs: Uint32Array;
  shortBytes: Uint8Array;
}

const GOLDEN = 0x9e3779b1;

function nextPow2Bits(n: number): number {
  return Math.max(1, 32 - Math.clz32(Math.max(1, n) - 1));
}

/** Called for each candidate (signature index, anchor start position); return true to stop the scan. */
export type CandidateFn = (sig: number, pos: number) => boolean | undefined;

/**
 * Order of `keys` by (key, index), without a comparator call per step when
 * the pair fits a double exactly (indices < 2^21: a million anchors sort natively).
 */
function orderByKey(keys: Uint32Array): Uint32Array {
  const n = keys.length;
  if (n < 2 ** 21) {
    const packed = new Float64Array(n);
    for (let i = 0; i < n; i++) packed[i] = keys[i]! * 2 ** 21 + i;
    packed.sort();
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = packed[i]! % 2 ** 21;
    return order;
  }
  return Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a]! - keys[b]! || a - b);
}

/** Builds the columns from one entry per signature (any order). */
export function anchorColumns(entries: AnchorEntry[]): AnchorColumns {
  const b = new AnchorColumnsBuilder(entries.length);
  // Within one anchor word, signatures are reported in signature order.
  for (const e of [...entries].sort((x, y) => x.sig - y.sig)) b.add(e.sig, e.key, e.length, e.bytes, e.ext);
  return b.finish();
}

/** Collects anchors one signature at a time into typed arrays (no object per anchor), then groups them. */
export class AnchorColumnsBuilder {
  private n = 0;
  private keys: Uint32Array;
  private sigs: Uint32Array;
  private extOff: Int8Array;
  private extVal: Uint32Array;
  private extMask: Uint32Array;
  private shortSigs: number[] = [];
  private shortBytes: number[] = [];

  constructor(capacity: number) {
    const c = Math.max(16, capacity);
    this.keys = new Uint32Array(c);
    this.sigs = new Uint32Array(c);
    this.extOff = new Int8Array(c);
    this.extVal = new Uint32Array(c);
    this.extMask = new Uint32Array(c);
  }

  add(sig: number, key: number, length: number, bytes: Uint8Array, ext?: AnchorEntry["ext"]): void {
    if (length < 4) {
      this.shortSigs.push(sig);
      this.shortBytes.push(length, bytes[0] ?? 0, bytes[1] ?? 0, bytes[2] ?? 0);
      return;
    }
    if (this.n === this.keys.length) this.grow();
    const i = this.n++;
    this.keys[i] = key;
    this.sigs[i] = sig;
    this.extOff[i] = ext?.offset ?? 0;
    this.extVal[i] = ext?.value ?? 0;
    this.extMask[i] = ext?.mask ?? 0;
  }

  private grow(): void {
    const c = this.keys.length * 2;
    const g = <T extends Uint32Array | Int8Array>(a: T, make: (n: number) => T): T => {
      const b = make(c);
      b.set(a);
      return b;
    };
    this.keys = g(this.keys, (n) => new Uint32Array(n));
    this.sigs = g(this.sigs, (n) => new Uint32Array(n));
    this.extOff = g(this.extOff, (n) => new Int8Array(n));
    this.extVal = g(this.extVal, (n) => new Uint32Array(n));
    this.extMask = g(this.extMask, (n) => new Uint32Array(n));
  }

  finish(): AnchorColumns {
    const n = this.n;
    const order = orderByKey(this.keys.subarray(0, n));
    let unique = 0;
    for (let j = 0; j < n; j++) if (j === 0 || this.keys[order[j]!] !== this.keys[order[j - 1]!]) unique++;
    const keys = new Uint32Array(unique);
    const listStart = new Uint32Array(unique + 1);
    const listSigs = new Uint32Array(n);
    const extOff = new Int8Array(n);
    const extVal = new Uint32Array(n);
    const extMask = new Uint32Array(n);
    let u = -1;
    for (let j = 0; j < n; j++) {
      const i = order[j]!;
      if (j === 0 || this.keys[i] !== this.keys[order[j - 1]!]) {
        keys[++u] = this.keys[i]!;
        listStart[u] = j;
      }
      listSigs[j] = this.sigs[i]!;
      extOff[j] = this.extOff[i]!;
      extVal[j] = this.extVal[i]!;
      extMask[j] = this.extMask[i]!;
    }
    listStart[unique] = n;
    return {
      keys,
      listStart,
      listSigs,
      extOff,
      extVal,
      extMask,
      shortSigs: Uint32Array.from(this.shortSigs),
      shortBytes: Uint8Array.from(this.shortBytes),
    };
  }
}

export class AnchorIndex {
  private readonly filterBits: number;
  private readonly filter: Int32Array;
  private readonly tableShift: number;
  private readonly tableKeys: Uint32Array;
  /** Index into listStart for a used slot, -1 for empty. */
  private readonly tableVals: Int32Array;
  private readonly listStart: Uint32Array;
  private readonly listSigs: Uint32Array;
  /** Per list entry: extension word offset from the anchor, value and mask (mask 0: none). */
  private readonly listExtOff: Int8Array;
  private readonly listExtVal: Uint32Array;
  private readonly listExtMask: Uint32Array;
  private readonly shortMarks: Uint8Array | null;
  private readonly shortLists: Map<number, { bytes: Uint8Array; sig: number }[]>;
  readonly columns: AnchorColumns;
  readonly anchors: number;
  readonly uniqueAnchors: number;
  readonly shortAnchors: number;

  /** From one entry per signature, or from columns (built by AnchorColumnsBuilder or read from a pack). */
  constructor(input: AnchorEntry[] | AnchorColumns) {
    const c = Array.isArray(input) ? anchorColumns(input) : input;
    this.columns = c;
    const uniq = c.keys;
    this.shortAnchors = c.shortSigs.length;
    this.anchors = c.listSigs.length + this.shortAnchors;
    this.uniqueAnchors = uniq.length;
    this.listStart = c.listStart;
    this.listSigs = c.listSigs;
    this.listExtOff = c.extOff;
    this.listExtVal = c.extVal;
    this.listExtMask = c.extMask;

    // ~64 filter bits per anchor: 1.5 % false "maybe"s, and ≤ 2^23 bits (1 MiB) so it stays cache-resident.
    this.filterBits = Math.min(23, Math.max(16, nextPow2Bits(uniq.length * 64)));
    this.filter = new Int32Array(1 << (this.filterBits - 5));
    const tableBits = nextPow2Bits(uniq.length * 2 + 1);
    this.tableShift = 32 - tableBits;
    this.tableKeys = new Uint32Array(1 << tableBits);
    this.tableVals = new Int32Array(1 << tableBits).fill(-1);
    const mask = (1 << tableBits) - 1;
    const fshift = 32 - this.filterBits;
    for (let u = 0; u < uniq.length; u++) {
      const key = uniq[u]!;
      const x = Math.imul(key, GOLDEN) >>> fshift;
      this.filter[x >>> 5]! |= 1 << (x & 31);
      let slot = Math.imul(key, 0x85ebca6b) >>> this.tableShift;
      while (this.tableVals[slot] !== -1) slot = (slot + 1) & mask;
      this.tableKeys[slot] = key;
      this.tableVals[slot] = u;
    }

    this.shortLists = new Map();
    if (this.shortAnchors) {
      this.shortMarks = new Uint8Array(65536);
      for (let i = 0; i < this.shortAnchors; i++) {
        const b = c.shortBytes.subarray(i * 4, i * 4 + 4);
        const key = (b[1]! << 8) | b[2]!;
        this.shortMarks[key] = 1;
        const list = this.shortLists.get(key) ?? [];
        list.push({ bytes: b.subarray(1, 1 + b[0]!), sig: c.shortSigs[i]! });
        this.shortLists.set(key, list);
      }
    } else {
      this.shortMarks = null;
    }
  }

  /** Bytes of memory the index holds (for status). */
  get byteLength(): number {
    return (
      this.filter.byteLength +
      this.tableKeys.byteLength +
      this.tableVals.byteLength +
      this.listStart.byteLength +
      this.listSigs.byteLength * 4 +
      this.columns.keys.byteLength +
      (this.shortMarks?.byteLength ?? 0)
    );
  }

  get filterSizeBits(): number {
    return this.filterBits;
  }

  /** Reports every (signature, position) whose anchor occurs in `d`. */
  scan(d: Uint8Array, onCandidate: CandidateFn): void {
    if (this.uniqueAnchors > 0 && this.scanLong(d, onCandidate)) return;
    if (this.shortMarks) this.scanShort(d, onCandidate);
  }

  private scanLong(d: Uint8Array, onCandidate: CandidateFn): boolean {
    const filter = this.filter;
    const fshift = 32 - this.filterBits;
    const n = d.length;
    if (n < 4) return false;
    let h = (d[0]! << 16) | (d[1]! << 8) | d[2]!;
    for (let i = 3; i < n; i++) {
      h = (h << 8) | d[i]!;
      const x = Math.imul(h, GOLDEN) >>> fshift;
      if ((filter[x >>> 5]! & (1 << (x & 31))) !== 0) {
        if (this.probe(d, h >>> 0, i - 3, onCandidate)) return true;
      }
    }
    return false;
  }

  private probe(d: Uint8Array, key: number, pos: number, onCandidate: CandidateFn): boolean {
    const keys = this.tableKeys;
    const vals = this.tableVals;
    const mask = keys.length - 1;
    let slot = Math.imul(key, 0x85ebca6b) >>> this.tableShift;
    for (;;) {
      const u = vals[slot]!;
      if (u === -1) return false;
      if (keys[slot] === key) {
        const end = this.listStart[u + 1]!;
        const n = d.length;
        for (let j = this.listStart[u]!; j < end; j++) {
          const mask = this.listExtMask[j]!;
          if (mask !== 0) {
            const at = pos + this.listExtOff[j]!;
            if (at >= 0 && at + 4 <= n) {
              const w = (d[at]! << 24) | (d[at + 1]! << 16) | (d[at + 2]! << 8) | d[at + 3]!;
              if ((w & mask) >>> 0 !== this.listExtVal[j]) continue;
            }
            // Near either end of the data, verification decides (a partial extension may end there).
          }
          if (onCandidate(this.listSigs[j]!, pos)) return true;
        }
        return false;
      }
      slot = (slot + 1) & mask;
    }
  }

  private scanShort(d: Uint8Array, onCandidate: CandidateFn): void {
    const marks = this.shortMarks!;
    const n = d.length;
    for (let i = 1; i < n; i++) {
      const k = (d[i - 1]! << 8) | d[i]!;
      if (marks[k] === 0) continue;
      for (const { bytes, sig } of this.shortLists.get(k)!) {
        const s = i - 1;
        if (s + bytes.length > n) continue;
        let ok = true;
        for (let j = 2; j < bytes.length; j++) {
          if (d[s + j] !== bytes[j]) {
            ok = false;
            break;
          }
        }
        if (ok && onCandidate(sig, s)) return;
      }
    }
  }
}
