/**
 * Verification of one body pattern around an anchor hit: fixed bytes and
 * masks compared in place, bounded gaps and alternatives by a small
 * backtracking search, `*` parts by `Buffer.indexOf` of each part's longest
 * fixed run, in order. A Budget caps the steps one verification may take.
 */
import type { Part, Pattern, Token } from "./parse.ts";

export class BudgetExceeded extends Error {}

/** Caps the backtracking work of one verification (adversarial inputs); the caller resets it per anchor hit. */
export class Budget {
  steps = 0;
  constructor(public limit: number) {}
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

/** A one-part pattern: the part around the anchor, its start and end within the range (no search). */
function verifyOnePart(
  d: Uint8Array,
  part: Part,
  a: Pattern["anchor"],
  pos: number,
  range: StartRange,
  budget: Budget,
): MatchSpan | null {
  let start = -1;
  let end = -1;
  partAround(d, part, a, pos, budget, (s, e) => {
    if (s < range.lo || s > range.hi || e > range.endMax) return false;
    start = s;
    end = e;
    return true;
  });
  return start < 0 ? null : { start, end };
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
  // indexOf has no end: search a view that ends at endMax, so a bounded search costs its range only.
  const hay = endMax < buf.length ? buf.subarray(0, Math.max(0, endMax)) : buf;
  let q = hay.indexOf(run.bytes, from + run.prefixMin);
  while (q >= 0 && q + run.bytes.length <= endMax) {
    budget.spend();
    let found: MatchSpan | null = null;
    partAround(d, part, run, q, budget, (s, e) => {
      if (s < from || e > endMax) return false;
      found = { start: s, end: e };
      return true;
    });
    if (found) return found;
    q = hay.indexOf(run.bytes, q + 1);
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
/**
 * Per pattern and object: the last forward search of each part (from where,
 * what it found). Anchor hits arrive in increasing order, so a part that
 * does not occur after offset x is not searched for again from a later
 * offset — without this a common first part made every hit rescan the rest
 * of the object for a missing later part (quadratic).
 */
export type ForwardMemo = ({ from: number; endMax: number; span: MatchSpan | null } | undefined)[];

export function verifyAt(
  d: Uint8Array,
  buf: Buffer,
  pattern: Pattern,
  pos: number,
  range: StartRange,
  budget: Budget,
  memo?: ForwardMemo,
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
  if (parts.length === 1) return verifyOnePart(d, ap, a, pos, range, budget);
  let result: MatchSpan | null = null;

  /** Leftmost occurrence of part pi at or after `from`, through the memo. */
  const leftmost = (pi: number, from: number): MatchSpan | null => {
    // The memo's answer holds when `from` lies between its search start and what it found.
    const c = memo?.[pi];
    if (c && from >= c.from && (c.span === null || c.span.start >= from)) return c.span;
    const m = findForward(d, buf, parts[pi]!, from, range.endMax, budget);
    if (memo) memo[pi] = { from, endMax: range.endMax, span: m };
    return m;
  };

  /**
   * Leftmost occurrence of fixed-length part pi at or after `from` that ends
   * by `bound` (a part before the anchor's ends before the hit). The object is
   * searched only up to the hit: a later hit resumes where the last search
   * stopped, so a part that is absent costs one pass up to the last hit in
   * all, not one pass of the whole object.
   */
  const leftmostBefore = (pi: number, from: number, bound: number): MatchSpan | null => {
    const c = memo![pi];
    let searchFrom = from;
    if (c && from >= c.from) {
      if (c.span) {
        if (c.span.start >= from) return c.span.end <= bound ? c.span : null;
      } else if (bound <= c.endMax) {
        return null;
      } else {
        // Nothing starts in [from, c.endMax - length] (its end would have been ≤ c.endMax).
        searchFrom = Math.max(from, c.endMax - parts[pi]!.maxLength + 1);
      }
    }
    const m = findForward(d, buf, parts[pi]!, searchFrom, bound, budget);
    memo![pi] = { from, endMax: bound, span: m };
    return m;
  };

  const after = (end: number): number | null => {
    let e = end;
    for (let pi = a.part + 1; pi < parts.length; pi++) {
      const m = leftmost(pi, e + pattern.minGap[pi]!);
      if (!m) return null;
      e = m.end;
    }
    return e <= range.endMax ? e : null;
  };

  /**
   * The parts before the anchor's, as one greedy chain of leftmost
   * occurrences from offset 0: for fixed-length parts the leftmost start is
   * also the earliest end, so a chain ending before the anchor part exists
   * exactly when this one does. Memoised, it costs O(parts) per hit instead
   * of a backward search over the object; used when the offset allows any start.
   */
  const greedyBefore = (): boolean => {
    for (let pi = 0; pi < a.part; pi++) if (parts[pi]!.minLength !== parts[pi]!.maxLength) return false;
    return true;
  };
  const chainBefore = (start: number): number | null => {
    let s0 = -1;
    let e = 0;
    const bound = start - pattern.minGap[a.part]!;
    for (let pi = 0; pi < a.part; pi++) {
      const m = leftmostBefore(pi, pi === 0 ? 0 : e + pattern.minGap[pi]!, bound);
      if (!m) return null;
      if (pi === 0) s0 = m.start;
      e = m.end;
    }
    return e <= bound ? s0 : null;
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
    if (memo && a.part > 0 && range.lo === 0 && greedyBefore()) {
      const s0 = chainBefore(s);
      if (s0 === null || s0 > range.hi) return false;
      result = { start: s0, end };
      return true;
    }
    return before(s, a.part - 1, (s0) => {
      if (s0 < range.lo || s0 > range.hi) return false;
      result = { start: s0, end };
      return true;
    });
  });
  return result;
}
