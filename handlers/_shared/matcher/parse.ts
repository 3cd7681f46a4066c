/**
 * The hex language of ClamAV `.ndb` body signatures, parsed into tokens
 * (docs/scanning.md lists the supported subset):
 *
 *   aabb        fixed bytes          ??  any byte      a? / ?a  nibble
 *   {n} {-n} {n-m} [n-m]  bounded gaps                {n-}  at least n bytes
 *   *           any number of bytes (splits the pattern into ordered parts)
 *   (aa|bbcc)   alternatives          !(aa|bb)  none of these (equal lengths)
 *
 * `*` and `{n-}` split a pattern into *parts* matched in order with no upper
 * bound between them; inside a part every gap is bounded, so verifying a
 * part from its anchor is a small bounded search (verify.ts). Anchor choice
 * is anchor.ts; pattern.ts puts the pieces together.
 */

export interface ByteRun {
  bytes: Uint8Array;
  /** Per-byte mask (0xff exact, 0xf0/0x0f nibble, 0 any); null when every byte is exact. */
  mask: Uint8Array | null;
}

export type Token =
  | ({ kind: "bytes" } & ByteRun)
  | { kind: "gap"; min: number; max: number }
  | { kind: "alt"; options: ByteRun[]; negated: boolean };

export interface Part {
  tokens: Token[];
  minLength: number;
  maxLength: number;
  /** The longest exact run of this part: what finds it when it is not the anchor part. */
  search: RunRef;
}

export interface RunRef {
  token: number;
  /** Offset of the run inside its bytes token. */
  offset: number;
  bytes: Uint8Array;
  /** Smallest and largest distance from the part's start to the run. */
  prefixMin: number;
  prefixMax: number;
}

export interface Anchor extends RunRef {
  part: number;
  /** The anchor's bytes as a big-endian integer (4-byte anchors), or of its first two bytes (short). */
  key: number;
  /** Smallest / largest distance from the pattern's start to the anchor (Infinity after a `*`). */
  startMin: number;
  startMax: number;
  /**
   * Up to four more bytes of the same token next to the anchor (at `offset`
   * from the anchor's first byte) as a big-endian word with a per-bit mask:
   * checked in the index before a candidate is reported, so a common anchor
   * costs one masked compare, not a verification. Null when there are none.
   */
  ext: { offset: number; value: number; mask: number } | null;
}

export interface Pattern {
  parts: Part[];
  /** minGap[i]: fewest bytes between the end of part i-1 and the start of part i (minGap[0] = 0). */
  minGap: number[];
  anchor: Anchor;
  minLength: number;
  /** True for one part of one exact-or-masked bytes token: verification is one comparison. */
  simple: boolean;
}

export class PatternError extends Error {}

/** Longest accepted pattern text; ClamAV's own limits are of the same order. */
export const MAX_PATTERN_CHARS = 16_384;
/** A bounded gap above this is almost certainly a mistake and would make verification slow. */
export const MAX_GAP = 1 << 20;
export const ANCHOR_BYTES = 4;

/** Nibble value per character code: 0–15 for hex digits, -2 for '?', -1 otherwise. */
const NIBBLE = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let c = 0; c < 10; c++) t[0x30 + c] = c;
  for (let c = 0; c < 6; c++) {
    t[0x41 + c] = 10 + c;
    t[0x61 + c] = 10 + c;
  }
  t[0x3f] = -2;
  return t;
})();

/** Parses one hex/wildcard byte at text[i], text[i+1] into values/masks; false when they are not one. */
function pushByte(text: string, i: number, values: number[], masks: number[]): boolean {
  const ca = text.charCodeAt(i);
  const cb = text.charCodeAt(i + 1);
  const a = ca < 128 ? NIBBLE[ca]! : -1;
  const b = cb < 128 ? NIBBLE[cb]! : -1;
  if (a === -1 || b === -1) return false;
  if (a === -2 && b === -2) {
    values.push(0);
    masks.push(0);
  } else if (a === -2) {
    values.push(b);
    masks.push(0x0f);
  } else if (b === -2) {
    values.push(a << 4);
    masks.push(0xf0);
  } else {
    values.push((a << 4) | b);
    masks.push(0xff);
  }
  return true;
}

function toRun(values: number[], masks: number[]): ByteRun {
  const n = values.length;
  const bytes = new Uint8Array(n);
  let exact = true;
  for (let i = 0; i < n; i++) {
    bytes[i] = values[i]!;
    if (masks[i] !== 0xff) exact = false;
  }
  return { bytes, mask: exact ? null : Uint8Array.from(masks) };
}

function parseInt10(s: string, what: string): number {
  if (!/^[0-9]{1,9}$/.test(s)) throw new PatternError(`bad number '${s}' in ${what}`);
  return Number(s);
}

/** A raw item stream before parts/tokens are formed. */
type Item =
  | { k: "bytes"; values: number[]; masks: number[] }
  | { k: "gap"; min: number; max: number }
  | { k: "split"; min: number }
  | { k: "alt"; options: ByteRun[]; negated: boolean };

export function lex(text: string): Item[] {
  const items: Item[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === "*") {
      items.push({ k: "split", min: 0 });
      i++;
    } else if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      const end = text.indexOf(close, i);
      if (end < 0) throw new PatternError(`unclosed '${c}' at ${i}`);
      const body = text.slice(i + 1, end);
      const what = `${c}${body}${close}`;
      const dash = body.indexOf("-");
      if (dash < 0) {
        const v = parseInt10(body, what);
        items.push({ k: "gap", min: v, max: v });
      } else {
        const lo = body.slice(0, dash);
        const hi = body.slice(dash + 1);
        if (lo === "" && hi === "") throw new PatternError(`empty range ${what}`);
        if (hi === "") {
          if (c === "[") throw new PatternError(`${what}: [n-m] needs an upper bound`);
          items.push({ k: "split", min: parseInt10(lo, what) });
        } else {
          const min = lo === "" ? 0 : parseInt10(lo, what);
          const max = parseInt10(hi, what);
          if (max < min) throw new PatternError(`${what}: upper bound below lower bound`);
          items.push({ k: "gap", min, max });
        }
      }
      i = end + 1;
    } else if (c === "(" || (c === "!" && text[i + 1] === "(")) {
      const negated = c === "!";
      const start = negated ? i + 2 : i + 1;
      const end = text.indexOf(")", start);
      if (end < 0) throw new PatternError(`unclosed '(' at ${i}`);
      const body = text.slice(start, end);
      if (body === "B" || body === "L" || body === "W") {
        throw new PatternError(`(${body}) boundary markers are not supported`);
      }
      const options = body.split("|").map((alt) => {
        if (alt.length === 0 || alt.length % 2 !== 0 || !/^[0-9a-fA-F?]+$/.test(alt)) {
          throw new PatternError(`bad alternative '${alt}' in (${body})`);
        }
        const values: number[] = [];
        const masks: number[] = [];
        for (let j = 0; j < alt.length; j += 2) pushByte(alt, j, values, masks);
        return toRun(values, masks);
      });
      if (options.length < 2) throw new PatternError(`(${body}) needs at least two alternatives`);
      if (negated && options.some((o) => o.bytes.length !== options[0]!.bytes.length)) {
        throw new PatternError(`!(${body}): negated alternatives must have equal lengths`);
      }
      items.push({ k: "alt", options, negated });
      i = end + 1;
    } else {
      // A run of bytes, consumed at once: one item per run, not per byte.
      const values: number[] = [];
      const masks: number[] = [];
      for (;;) {
        if (i + 1 >= n) throw new PatternError(`odd number of hex digits at ${i}`);
        if (!pushByte(text, i, values, masks))
          throw new PatternError(`unexpected '${text[i]}${text[i + 1]}' at ${i}`);
        i += 2;
        const next = text.charCodeAt(i);
        if (i >= n || next >= 128 || NIBBLE[next] === -1) break;
      }
      items.push({ k: "bytes", values, masks });
    }
  }
  return items;
}

/** Fixed gaps up to this size become `??` bytes of the surrounding token (one comparison instead of a search). */
const FOLD_FIXED_GAP = 64;

export function buildParts(items: Item[]): { parts: Token[][]; minGap: number[] } {
  const parts: Token[][] = [[]];
  const minGap = [0];
  let values: number[] = [];
  let masks: number[] = [];
  const flush = () => {
    if (values.length) parts[parts.length - 1]!.push({ kind: "bytes", ...toRun(values, masks) });
    values = [];
    masks = [];
  };
  for (const it of items) {
    if (it.k === "bytes") {
      for (let j = 0; j < it.values.length; j++) {
        values.push(it.values[j]!);
        masks.push(it.masks[j]!);
      }
    } else if (it.k === "gap" && it.min === it.max && it.min <= FOLD_FIXED_GAP && values.length > 0) {
      for (let g = 0; g < it.min; g++) {
        values.push(0);
        masks.push(0);
      }
    } else if (it.k === "gap") {
      if (it.max > MAX_GAP) throw new PatternError(`gap {${it.min}-${it.max}} exceeds ${MAX_GAP} bytes`);
      flush();
      if (it.max > 0) parts[parts.length - 1]!.push({ kind: "gap", min: it.min, max: it.max });
    } else if (it.k === "alt") {
      flush();
      parts[parts.length - 1]!.push({ kind: "alt", options: it.options, negated: it.negated });
    } else {
      flush();
      parts.push([]);
      minGap.push(it.min);
    }
  }
  flush();
  parts.forEach((p, i) => {
    if (p.length === 0) throw new PatternError(`empty part ${i + 1} (leading, trailing or doubled '*')`);
    if (p[0]!.kind === "gap" || p[p.length - 1]!.kind === "gap") {
      throw new PatternError(`part ${i + 1} starts or ends with a gap`);
    }
  });
  return { parts, minGap };
}

export function tokenLength(t: Token): { min: number; max: number } {
  if (t.kind === "bytes") return { min: t.bytes.length, max: t.bytes.length };
  if (t.kind === "gap") return { min: t.min, max: t.max };
  let min = Infinity;
  let max = 0;
  for (const o of t.options) {
    min = Math.min(min, o.bytes.length);
    max = Math.max(max, o.bytes.length);
  }
  return { min, max };
}

/** A maximal run of exact (unmasked) bytes inside a bytes token. */
export interface ExactRun {
  token: number;
  offset: number;
  length: number;
  prefixMin: number;
  prefixMax: number;
}

export function exactRuns(tokens: Token[]): ExactRun[] {
  const runs: ExactRun[] = [];
  let prefixMin = 0;
  let prefixMax = 0;
  tokens.forEach((t, ti) => {
    if (t.kind === "bytes") {
      let s = -1;
      const n = t.bytes.length;
      for (let i = 0; i <= n; i++) {
        const exact = i < n && (t.mask === null || t.mask[i] === 0xff);
        if (exact && s < 0) s = i;
        if (!exact && s >= 0) {
          runs.push({
            token: ti,
            offset: s,
            length: i - s,
            prefixMin: prefixMin + s,
            prefixMax: prefixMax + s,
          });
          s = -1;
        }
      }
    }
    const l = tokenLength(t);
    prefixMin += l.min;
    prefixMax += l.max;
  });
  return runs;
}

export function runBytes(tokens: Token[], r: ExactRun, length = r.length, from = 0): Uint8Array {
  const t = tokens[r.token] as Extract<Token, { kind: "bytes" }>;
  return t.bytes.slice(r.offset + from, r.offset + from + length);
}
