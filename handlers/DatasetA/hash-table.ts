/**
 * Hash signatures (`.hdb`/`.hsb`) as sorted flat tables, one per algorithm:
 * the raw digests back to back (16, 20 or 32 bytes each), sorted, with the
 * size and the signature's line beside each. A lookup is a binary search
 * over bytes — no string key and no JS object per signature, so a million
 * hashes cost ~45 bytes each instead of a Map entry and an object.
 */
import type { HashAlgo } from "./signatures.ts";

export const HASH_ALGOS = ["md5", "sha1", "sha256"] as const satisfies readonly HashAlgo[];
export const DIGEST_BYTES: Record<HashAlgo, number> = { md5: 16, sha1: 20, sha256: 32 };

/** Where a signature's line is: file (index into the dataset's files), byte offset of the line, line number. */
export interface LineRefs {
  file: Uint16Array;
  start: Uint32Array;
  line: Uint32Array;
}

export interface HashColumns extends LineRefs {
  /** n × DIGEST_BYTES[algo] bytes, in increasing byte order. */
  digests: Uint8Array;
  /** Exact size, or -1 for ClamAV's `*` (any size). */
  sizes: Float64Array;
}

export type HashTables = Record<HashAlgo, HashColumns>;

export function emptyHashColumns(): HashColumns {
  return {
    digests: new Uint8Array(0),
    sizes: new Float64Array(0),
    file: new Uint16Array(0),
    start: new Uint32Array(0),
    line: new Uint32Array(0),
  };
}

function compareAt(a: Uint8Array, ai: number, b: Uint8Array, bi: number, len: number): number {
  for (let k = 0; k < len; k++) {
    const d = a[ai + k]! - b[bi + k]!;
    if (d !== 0) return d;
  }
  return 0;
}

const NIB = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let c = 0; c < 10; c++) t[0x30 + c] = c;
  for (let c = 0; c < 6; c++) {
    t[0x41 + c] = 10 + c;
    t[0x61 + c] = 10 + c;
  }
  return t;
})();

/** Accumulates one algorithm's signatures in growable typed arrays, then sorts them. */
class AlgoBuilder {
  n = 0;
  private digests: Uint8Array;
  private sizes: Float64Array;
  private file: Uint16Array;
  private start: Uint32Array;
  private line: Uint32Array;

  constructor(private readonly width: number) {
    this.digests = new Uint8Array(64 * width);
    this.sizes = new Float64Array(64);
    this.file = new Uint16Array(64);
    this.start = new Uint32Array(64);
    this.line = new Uint32Array(64);
  }

  /** `hex` is the digest in hex (already checked: width × 2 hex digits). */
  add(hex: string, size: number | null, file: number, start: number, line: number): void {
    if (this.n === this.sizes.length) this.grow();
    const i = this.n++;
    const at = i * this.width;
    for (let k = 0; k < this.width; k++) {
      this.digests[at + k] = (NIB[hex.charCodeAt(2 * k)]! << 4) | NIB[hex.charCodeAt(2 * k + 1)]!;
    }
    this.sizes[i] = size ?? -1;
    this.file[i] = file;
    this.start[i] = start;
    this.line[i] = line;
  }

  private grow(): void {
    const c = this.sizes.length * 2;
    const d = new Uint8Array(c * this.width);
    d.set(this.digests);
    this.digests = d;
    const s = new Float64Array(c);
    s.set(this.sizes);
    this.sizes = s;
    const f = new Uint16Array(c);
    f.set(this.file);
    this.file = f;
    const st = new Uint32Array(c);
    st.set(this.start);
    this.start = st;
    const l = new Uint32Array(c);
    l.set(this.line);
    this.line = l;
  }

  finish(): HashColumns {
    const n = this.n;
    const w = this.width;
    const src = this.digests;
    // Sort by the first four digest bytes natively (packed with the index in a double),
    // then settle the rare runs that share those bytes with a full comparison.
    const order = new Uint32Array(n);
    if (n < 2 ** 21) {
      const packed = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const p =
          ((src[i * w]! << 24) | (src[i * w + 1]! << 16) | (src[i * w + 2]! << 8) | src[i * w + 3]!) >>> 0;
        packed[i] = p * 2 ** 21 + i;
      }
      packed.sort();
      for (let i = 0; i < n; i++) order[i] = packed[i]! % 2 ** 21;
      for (let i = 0; i < n; ) {
        let j = i + 1;
        while (j < n && compareAt(src, order[i]! * w, src, order[j]! * w, 4) === 0) j++;
        if (j - i > 1) order.subarray(i, j).sort((a, b) => compareAt(src, a * w, src, b * w, w) || a - b);
        i = j;
      }
    } else {
      for (let i = 0; i < n; i++) order[i] = i;
      order.sort((a, b) => compareAt(src, a * w, src, b * w, w) || a - b);
    }
    const out: HashColumns = {
      digests: new Uint8Array(n * w),
      sizes: new Float64Array(n),
      file: new Uint16Array(n),
      start: new Uint32Array(n),
      line: new Uint32Array(n),
    };
    for (let j = 0; j < n; j++) {
      const i = order[j]!;
      out.digests.set(src.subarray(i * w, i * w + w), j * w);
      out.sizes[j] = this.sizes[i]!;
      out.file[j] = this.file[i]!;
      out.start[j] = this.start[i]!;
      out.line[j] = this.line[i]!;
    }
    return out;
  }
}

export class HashTablesBuilder {
  private readonly algos: Record<HashAlgo, AlgoBuilder> = {
    md5: new AlgoBuilder(16),
    sha1: new AlgoBuilder(20),
    sha256: new AlgoBuilder(32),
  };

  add(algo: HashAlgo, hex: string, size: number | null, file: number, start: number, line: number): void {
    this.algos[algo].add(hex, size, file, start, line);
  }

  get count(): number {
    return this.algos.md5.n + this.algos.sha1.n + this.algos.sha256.n;
  }

  finish(): HashTables {
    return {
      md5: this.algos.md5.finish(),
      sha1: this.algos.sha1.finish(),
      sha256: this.algos.sha256.finish(),
    };
  }
}

/** Lookups over finished tables, with the per-algorithm size sets that decide which digests to compute. */
export class HashIndex {
  /** Distinct exact sizes per algorithm, sorted; whether any signature of it has size `*`. */
  private readonly sizes = new Map<HashAlgo, { exact: Float64Array; any: boolean }>();

  constructor(readonly tables: HashTables) {
    for (const algo of HASH_ALGOS) {
      const s = tables[algo].sizes;
      if (s.length === 0) continue;
      const sorted = Float64Array.from(s).sort();
      let any = false;
      let u = 0;
      for (let i = 0; i < sorted.length; i++) {
        const v = sorted[i]!;
        if (v < 0) any = true;
        else if (u === 0 || sorted[u - 1] !== v) sorted[u++] = v;
      }
      this.sizes.set(algo, { exact: sorted.slice(0, u), any });
    }
  }

  get count(): number {
    return HASH_ALGOS.reduce((n, a) => n + this.tables[a].sizes.length, 0);
  }

  /** Algorithms with a signature that could match an object of this size. */
  algosFor(size: number): HashAlgo[] {
    const out: HashAlgo[] = [];
    for (const [algo, s] of this.sizes) {
      if (s.any) {
        out.push(algo);
        continue;
      }
      let lo = 0;
      let hi = s.exact.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (s.exact[mid]! < size) lo = mid + 1;
        else hi = mid;
      }
      if (s.exact[lo] === size) out.push(algo);
    }
    return out;
  }

  /** Rows of `algo`'s table whose digest equals `digest` and whose size admits `size`. */
  find(algo: HashAlgo, digest: Uint8Array, size: number): number[] {
    const t = this.tables[algo];
    const w = DIGEST_BYTES[algo];
    let lo = 0;
    let hi = t.sizes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareAt(t.digests, mid * w, digest, 0, w) < 0) lo = mid + 1;
      else hi = mid;
    }
    const rows: number[] = [];
    for (let i = lo; i < t.sizes.length && compareAt(t.digests, i * w, digest, 0, w) === 0; i++) {
      const s = t.sizes[i]!;
      if (s < 0 || s === size) rows.push(i);
    }
    return rows;
  }
}

/** Digests are sorted and sizes are -1 or whole numbers: what a prebuilt table must satisfy. */
export function checkHashColumns(algo: HashAlgo, t: HashColumns): string | null {
  const w = DIGEST_BYTES[algo];
  const n = t.sizes.length;
  if (t.digests.length !== n * w) return `${algo}: ${t.digests.length} digest bytes for ${n} rows`;
  if (t.file.length !== n || t.start.length !== n || t.line.length !== n)
    return `${algo}: column lengths differ`;
  for (let i = 0; i < n; i++) {
    const s = t.sizes[i]!;
    if (!(s === -1 || (Number.isInteger(s) && s >= 0 && s <= 2 ** 40)))
      return `${algo}: bad size at row ${i}`;
    if (i > 0 && compareAt(t.digests, (i - 1) * w, t.digests, i * w, w) > 0)
      return `${algo}: rows not sorted at ${i}`;
  }
  return null;
}
