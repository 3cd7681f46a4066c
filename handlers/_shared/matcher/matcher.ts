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

const GOLDEN = 0x9e3779b1;

function nextPow2Bits(n: number): number {
  return Math.max(1, 32 - Math.clz32(Math.max(1, n) - 1));
}

/** Called for each candidate (signature index, anchor start position); return true to stop the scan. */
export type CandidateFn = (sig: number, pos: number) => boolean | undefined;

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
  readonly anchors: number;
  readonly uniqueAnchors: number;
  readonly shortAnchors: number;

  constructor(entries: AnchorEntry[]) {
    const long = entries.filter((e) => e.length === 4);
    const short = entries.filter((e) => e.length < 4);
    this.anchors = entries.length;
    this.shortAnchors = short.length;

    // Group signatures by anchor word (CSR layout: listStart/listSigs).
    long.sort((a, b) => a.key - b.key || a.sig - b.sig);
    const uniq: number[] = [];
    const starts: number[] = [];
    long.forEach((e, i) => {
      if (i === 0 || e.key !== long[i - 1]!.key) {
        uniq.push(e.key);
        starts.push(i);
      }
    });
    starts.push(long.length);
    this.uniqueAnchors = uniq.length;
    this.listStart = Uint32Array.from(starts);
    this.listSigs = Uint32Array.from(long, (e) => e.sig);
    this.listExtOff = Int8Array.from(long, (e) => e.ext?.offset ?? 0);
    this.listExtVal = Uint32Array.from(long, (e) => e.ext?.value ?? 0);
    this.listExtMask = Uint32Array.from(long, (e) => e.ext?.mask ?? 0);

    // ~64 filter bits per anchor: 1.5 % false "maybe"s, and ≤ 2^23 bits (1 MiB) so it stays cache-resident.
    this.filterBits = Math.min(23, Math.max(16, nextPow2Bits(uniq.length * 64)));
    this.filter = new Int32Array(1 << (this.filterBits - 5));
    const tableBits = nextPow2Bits(uniq.length * 2 + 1);
    this.tableShift = 32 - tableBits;
    this.tableKeys = new Uint32Array(1 << tableBits);
    this.tableVals = new Int32Array(1 << tableBits).fill(-1);
    const mask = (1 << tableBits) - 1;
    const fshift = 32 - this.filterBits;
    uniq.forEach((key, u) => {
      const x = Math.imul(key, GOLDEN) >>> fshift;
      this.filter[x >>> 5]! |= 1 << (x & 31);
      let slot = Math.imul(key, 0x85ebca6b) >>> this.tableShift;
      while (this.tableVals[slot] !== -1) slot = (slot + 1) & mask;
      this.tableKeys[slot] = key;
      this.tableVals[slot] = u;
    });

    this.shortLists = new Map();
    if (short.length) {
      this.shortMarks = new Uint8Array(65536);
      for (const e of short) {
        this.shortMarks[e.key] = 1;
        const list = this.shortLists.get(e.key) ?? [];
        list.push({ bytes: e.bytes, sig: e.sig });
        this.shortLists.set(e.key, list);
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
