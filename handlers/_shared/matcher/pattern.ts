/**
 * Body-signature patterns: the hex language of ClamAV `.ndb` signatures
 * (docs/scanning.md lists the supported subset), compiled once at load into
 * tokens a small backtracking verifier walks, plus the *anchor* — the fixed
 * bytes every match must contain, which the multi-pattern filter looks for.
 *
 *   aabb        fixed bytes          ??  any byte      a? / ?a  nibble
 *   {n} {-n} {n-m} [n-m]  bounded gaps                {n-}  at least n bytes
 *   *           any number of bytes (splits the pattern into ordered parts)
 *   (aa|bbcc)   alternatives          !(aa|bb)  none of these (equal lengths)
 *
 * `*` and `{n-}` split a pattern into *parts* matched in order with no upper
 * bound between them; inside a part every gap is bounded, so verifying a
 * part from its anchor is a small bounded search.
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

function lex(text: string): Item[] {
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

function buildParts(items: Item[]): { parts: Token[][]; minGap: number[] } {
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

function tokenLength(t: Token): { min: number; max: number } {
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

/**
 * How common a byte is in ordinary files (rough, from executables and text):
 * anchors made of rare bytes make the filter fire less often.
 */
const BYTE_COST = (() => {
  const cost = new Float64Array(256).fill(1);
  cost[0x00] = 12;
  cost[0xff] = 6;
  cost[0x20] = 4;
  for (let c = 0x30; c <= 0x39; c++) cost[c] = 2;
  for (let c = 0x41; c <= 0x5a; c++) cost[c] = 2;
  for (let c = 0x61; c <= 0x7a; c++) cost[c] = 2.5;
  for (const c of [0x0a, 0x0d, 0x09, 0x2e, 0x2f, 0x5f, 0x90, 0xcc, 0x48, 0x89, 0x8b, 0x01, 0xe8, 0x24]) {
    cost[c] = Math.max(cost[c]!, 3);
  }
  return cost;
})();

function windowCost(bytes: Uint8Array, start: number, len: number): number {
  let c = 0;
  for (let i = start; i < start + len; i++) {
    c += BYTE_COST[bytes[i]!]!;
    if (i > start && bytes[i] === bytes[i - 1]) c += 4;
  }
  return c;
}

interface ExactRun {
  token: number;
  offset: number;
  length: number;
  prefixMin: number;
  prefixMax: number;
}

function exactRuns(tokens: Token[]): ExactRun[] {
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

function runBytes(tokens: Token[], r: ExactRun, length = r.length, from = 0): Uint8Array {
  const t = tokens[r.token] as Extract<Token, { kind: "bytes" }>;
  return t.bytes.slice(r.offset + from, r.offset + from + length);
}

/** Compiles pattern text; throws PatternError with the reason. */
export function compilePattern(text: string): Pattern {
  if (text.length === 0) throw new PatternError("empty pattern");
  if (text.length > MAX_PATTERN_CHARS) throw new PatternError(`longer than ${MAX_PATTERN_CHARS} characters`);
  const { parts: tokenParts, minGap } = buildParts(lex(text));

  const parts: Part[] = tokenParts.map((tokens, pi) => {
    const runs = exactRuns(tokens);
    const best = runs.reduce<ExactRun | undefined>((a, r) => (!a || r.length > a.length ? r : a), undefined);
    if (!best || best.length < 2) {
      throw new PatternError(`part ${pi + 1} has no 2 consecutive fixed bytes to search for`);
    }
    let minLength = 0;
    let maxLength = 0;
    for (const t of tokens) {
      const l = tokenLength(t);
      minLength += l.min;
      maxLength += l.max;
    }
    return {
      tokens,
      minLength,
      maxLength,
      search: {
        token: best.token,
        offset: best.offset,
        bytes: runBytes(tokens, best),
        prefixMin: best.prefixMin,
        prefixMax: best.prefixMax,
      },
    };
  });

  // The anchor: the rarest 4-byte window of any exact run; failing that the longest short run.
  let anchor: Anchor | undefined;
  let bestCost = Infinity;
  let partStartMin = 0;
  let partStartMax = 0;
  parts.forEach((part, pi) => {
    if (pi > 0) {
      partStartMin += parts[pi - 1]!.minLength + minGap[pi]!;
      partStartMax = Infinity;
    }
    const tokens = part.tokens;
    for (const r of exactRuns(tokens)) {
      const bytes = (tokens[r.token] as Extract<Token, { kind: "bytes" }>).bytes;
      for (let w = 0; w + ANCHOR_BYTES <= r.length; w++) {
        const cost = windowCost(bytes, r.offset + w, ANCHOR_BYTES);
        if (cost < bestCost) {
          bestCost = cost;
          const ab = runBytes(tokens, r, ANCHOR_BYTES, w);
          anchor = {
            part: pi,
            token: r.token,
            offset: r.offset + w,
            bytes: ab,
            prefixMin: r.prefixMin + w,
            prefixMax: r.prefixMax + w,
            key: ((ab[0]! << 24) | (ab[1]! << 16) | (ab[2]! << 8) | ab[3]!) >>> 0,
            startMin: partStartMin + r.prefixMin + w,
            startMax: partStartMax + r.prefixMax + w,
          };
        }
      }
    }
  });
  if (!anchor) {
    // No 4 consecutive fixed bytes anywhere: anchor on the longest short run (2–3 bytes).
    let best: { pi: number; r: ExactRun; startMin: number; startMax: number } | undefined;
    let sMin = 0;
    let sMax = 0;
    parts.forEach((part, pi) => {
      if (pi > 0) {
        sMin += parts[pi - 1]!.minLength + minGap[pi]!;
        sMax = Infinity;
      }
      for (const r of exactRuns(part.tokens)) {
        if (!best || r.length > best.r.length) best = { pi, r, startMin: sMin, startMax: sMax };
      }
    });
    const b = best!;
    const ab = runBytes(parts[b.pi]!.tokens, b.r, Math.min(b.r.length, ANCHOR_BYTES - 1));
    anchor = {
      part: b.pi,
      token: b.r.token,
      offset: b.r.offset,
      bytes: ab,
      prefixMin: b.r.prefixMin,
      prefixMax: b.r.prefixMax,
      key: (ab[0]! << 8) | ab[1]!,
      startMin: b.startMin + b.r.prefixMin,
      startMax: b.startMax + b.r.prefixMax,
    };
  }

  let minLength = 0;
  parts.forEach((p, i) => {
    minLength += p.minLength + minGap[i]!;
  });
  const simple = parts.length === 1 && parts[0]!.tokens.length === 1;
  return { parts, minGap, anchor, minLength, simple };
}

// ---------------------------------------------------------------------------
// Verification

export class BudgetExceeded extends Error {}

/** Caps the backtracking work one object may cost (adversarial inputs); reset per object. */
export class Budget {
  steps = 0;
  constructor(readonly limit: number) {}
  spend(n = 1): void {
    this.steps += n;
    if (this.steps > this.limit) throw new BudgetExceeded("verification budget exceeded");
  }
}

function runAt(d: Uint8Array, pos: number, bytes: Uint8Array, mask: Uint8Array | null): boolean {
  const n = bytes.length;
  if (pos < 0 || pos + n > d.length) return false;
  if (mask === null) {
    for (let i = 0; i < n; i++) if (d[pos + i] !== bytes[i]) return false;
  } else {
    for (let i = 0; i < n; i++) if ((d[pos + i]! & mask[i]!) !== bytes[i]) return false;
  }
  return true;
}

/** Matches tokens[i…] forward from pos; calls k(end) per way to match, stops at the first true. */
function forward(
  d: Uint8Array,
  toks: Token[],
  i: number,
  pos: number,
  budget: Budget,
  k: (end: number) => boolean,
): boolean {
  if (i === toks.length) return k(pos);
  const t = toks[i]!;
  budget.spend();
  if (t.kind === "bytes") {
    return runAt(d, pos, t.bytes, t.mask) && forward(d, toks, i + 1, pos + t.bytes.length, budget, k);
  }
  if (t.kind === "gap") {
    const last = Math.min(t.max, d.length - pos);
    for (let g = t.min; g <= last; g++) if (forward(d, toks, i + 1, pos + g, budget, k)) return true;
    return false;
  }
  if (t.negated) {
    const len = t.options[0]!.bytes.length;
    if (pos + len > d.length) return false;
    for (const o of t.options) if (runAt(d, pos, o.bytes, o.mask)) return false;
    return forward(d, toks, i + 1, pos + len, budget, k);
  }
  for (const o of t.options) {
    if (runAt(d, pos, o.bytes, o.mask) && forward(d, toks, i + 1, pos + o.bytes.length, budget, k))
      return true;
  }
  return false;
}

/** Matches tokens[i], tokens[i-1] … tokens[0] so that tokens[i] ends at `end`; calls k(start). */
function backward(
  d: Uint8Array,
  toks: Token[],
  i: number,
  end: number,
  budget: Budget,
  k: (start: number) => boolean,
): boolean {
  if (i < 0) return k(end);
  const t = toks[i]!;
  budget.spend();
  if (t.kind === "bytes") {
    const s = end - t.bytes.length;
    return runAt(d, s, t.bytes, t.mask) && backward(d, toks, i - 1, s, budget, k);
  }
  if (t.kind === "gap") {
    const last = Math.min(t.max, end);
    for (let g = t.min; g <= last; g++) if (backward(d, toks, i - 1, end - g, budget, k)) return true;
    return false;
  }
  if (t.negated) {
    const s = end - t.options[0]!.bytes.length;
    if (s < 0) return false;
    for (const o of t.options) if (runAt(d, s, o.bytes, o.mask)) return false;
    return backward(d, toks, i - 1, s, budget, k);
  }
  for (const o of t.options) {
    const s = end - o.bytes.length;
    if (runAt(d, s, o.bytes, o.mask) && backward(d, toks, i - 1, s, budget, k)) return true;
  }
  return false;
}

/** Where a match may start ([lo, hi], inclusive) and must end (≤ endMax). */
export interface StartRange {
  lo: number;
  hi: number;
  endMax: number;
}

export interface MatchSpan {
  start: number;
  end: number;
}

/** Matches one part with its search run at position q (run start); calls k(start, end). */
function partAround(
  d: Uint8Array,
  part: Part,
  ref: { token: number; offset: number },
  q: number,
  budget: Budget,
  k: (s: number, e: number) => boolean,
): boolean {
  const tok = part.tokens[ref.token] as Extract<Token, { kind: "bytes" }>;
  const ts = q - ref.offset;
  if (!runAt(d, ts, tok.bytes, tok.mask)) return false;
  return backward(d, part.tokens, ref.token - 1, ts, budget, (s) =>
    forward(d, part.tokens, ref.token + 1, ts + tok.bytes.length, budget, (e) => k(s, e)),
  );
}

/** Leftmost occurrence of `part` starting at or after `from` (and ending by `endMax`). */
function findForward(
  d: Uint8Array,
  buf: Buffer,
  part: Part,
  from: number,
  endMax: number,
  budget: Budget,
): MatchSpan | null {
  const run = part.search;
  let q = buf.indexOf(run.bytes, from + run.prefixMin);
  while (q >= 0 && q + run.bytes.length <= endMax) {
    budget.spend();
    let found: MatchSpan | null = null;
    partAround(d, part, run, q, budget, (s, e) => {
      if (s < from || e > endMax) return false;
      found = { start: s, end: e };
      return true;
    });
    if (found) return found;
    q = buf.indexOf(run.bytes, q + 1);
  }
  return null;
}

/** Rightmost occurrences of `part` ending at or before `endMax`, newest first; k decides. */
function eachBackward(
  d: Uint8Array,
  buf: Buffer,
  part: Part,
  endMax: number,
  budget: Budget,
  k: (span: MatchSpan) => boolean,
): boolean {
  const run = part.search;
  let q = buf.lastIndexOf(run.bytes, endMax - run.bytes.length);
  while (q >= 0) {
    budget.spend();
    const ok = partAround(d, part, run, q, budget, (s, e) => e <= endMax && k({ start: s, end: e }));
    if (ok) return true;
    if (q === 0) break;
    q = buf.lastIndexOf(run.bytes, q - 1);
  }
  return false;
}

/**
 * Verifies `pattern` around an anchor hit at `pos` (where the anchor bytes
 * start). `range` restricts the match start (offsets); returns the span.
 */
export function verifyAt(
  d: Uint8Array,
  buf: Buffer,
  pattern: Pattern,
  pos: number,
  range: StartRange,
  budget: Budget,
): MatchSpan | null {
  const a = pattern.anchor;
  // Cheap rejection: no start the offset allows is reachable from here.
  if (pos - a.startMin < range.lo || pos - a.startMax > range.hi) return null;
  const parts = pattern.parts;
  const ap = parts[a.part]!;
  if (pattern.simple) {
    const tok = ap.tokens[0] as Extract<Token, { kind: "bytes" }>;
    const s = pos - a.offset;
    if (s < range.lo || s > range.hi || s + tok.bytes.length > range.endMax) return null;
    return runAt(d, s, tok.bytes, tok.mask) ? { start: s, end: s + tok.bytes.length } : null;
  }
  let result: MatchSpan | null = null;

  const after = (end: number): number | null => {
    let e = end;
    for (let pi = a.part + 1; pi < parts.length; pi++) {
      const m = findForward(d, buf, parts[pi]!, e + pattern.minGap[pi]!, range.endMax, budget);
      if (!m) return null;
      e = m.end;
    }
    return e <= range.endMax ? e : null;
  };

  const before = (start: number, pi: number, k: (s0: number) => boolean): boolean => {
    if (pi < 0) return k(start);
    const limit = start - pattern.minGap[pi + 1]!;
    if (pi === 0 && range.lo > 0) {
      // Offset-constrained first part: try each start the offset allows.
      const hi = Math.min(range.hi, limit - parts[0]!.minLength);
      for (let s = range.lo; s <= hi; s++) {
        budget.spend();
        const p0 = parts[0]!;
        const ok = forward(d, p0.tokens, 0, s, budget, (e) => e <= limit && k(s));
        if (ok) return true;
      }
      return false;
    }
    return eachBackward(d, buf, parts[pi]!, limit, budget, (span) => before(span.start, pi - 1, k));
  };

  partAround(d, ap, a, pos, budget, (s, e) => {
    const end = after(e);
    if (end === null) return false;
    return before(s, a.part - 1, (s0) => {
      if (s0 < range.lo || s0 > range.hi) return false;
      result = { start: s0, end };
      return true;
    });
  });
  return result;
}
