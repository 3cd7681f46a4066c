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

const HEX = "0123456789abcdef";

function hexValue(c: string): number {
  const v = HEX.indexOf(c.toLowerCase());
  if (v < 0) throw new PatternError(`'${c}' is not a hex digit`);
  return v;
}

interface RawByte {
  value: number;
  mask: number;
}

function parseByte(a: string, b: string): RawByte {
  if (a === "?" && b === "?") return { value: 0, mask: 0 };
  if (a === "?") return { value: hexValue(b), mask: 0x0f };
  if (b === "?") return { value: hexValue(a) << 4, mask: 0xf0 };
  return { value: (hexValue(a) << 4) | hexValue(b), mask: 0xff };
}

function toRun(bytes: RawByte[]): ByteRun {
  const exact = bytes.every((b) => b.mask === 0xff);
  return {
    bytes: Uint8Array.from(bytes, (b) => b.value),
    mask: exact ? null : Uint8Array.from(bytes, (b) => b.mask),
  };
}

function parseInt10(s: string, what: string): number {
  if (!/^[0-9]{1,9}$/.test(s)) throw new PatternError(`bad number '${s}' in ${what}`);
  return Number(s);
}

/** A raw item stream before parts/tokens are formed. */
type Item =
  | { k: "byte"; b: RawByte }
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
        const bytes: RawByte[] = [];
        for (let j = 0; j < alt.length; j += 2) bytes.push(parseByte(alt[j]!, alt[j + 1]!));
        return toRun(bytes);
      });
      if (options.length < 2) throw new PatternError(`(${body}) needs at least two alternatives`);
      if (negated && options.some((o) => o.bytes.length !== options[0]!.bytes.length)) {
        throw new PatternError(`!(${body}): negated alternatives must have equal lengths`);
      }
      items.push({ k: "alt", options, negated });
      i = end + 1;
    } else {
      if (i + 1 >= n) throw new PatternError(`odd number of hex digits at ${i}`);
      const b = text[i + 1]!;
      if (!/[0-9a-fA-F?]/.test(c) || !/[0-9a-fA-F?]/.test(b)) {
        throw new PatternError(`unexpected '${c}${b}' at ${i}`);
      }
      items.push({ k: "byte", b: parseByte(c, b) });
      i += 2;
    }
  }
  return items;
}

/** Fixed gaps up to this size become `??` bytes of the surrounding token (one comparison instead of a search). */
const FOLD_FIXED_GAP = 64;

export function buildParts(items: Item[]): { parts: Token[][]; minGap: number[] } {
  const parts: Token[][] = [[]];
  const minGap = [0];
  let pending: RawByte[] = [];
  const flush = () => {
    if (pending.length) parts[parts.length - 1]!.push({ kind: "bytes", ...toRun(pending) });
    pending = [];
  };
  for (const it of items) {
    if (it.k === "byte") pending.push(it.b);
    else if (it.k === "gap" && it.min === it.max && it.min <= FOLD_FIXED_GAP && pending.length > 0) {
      for (let g = 0; g < it.min; g++) pending.push({ value: 0, mask: 0 });
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
