/**
 * Body-signature patterns: compiled once at load into tokens (parse.ts) a
 * small backtracking verifier walks (verify.ts), plus the *anchor* — the
 * fixed bytes every match must contain, which the multi-pattern filter
 * looks for (anchor.ts).
 */
import { selectAnchor } from "./anchor.ts";
import {
  buildParts,
  type ExactRun,
  exactRuns,
  lex,
  MAX_PATTERN_CHARS,
  type Part,
  type Pattern,
  PatternError,
  runBytes,
  tokenLength,
} from "./parse.ts";

export {
  ANCHOR_BYTES,
  type Anchor,
  type ByteRun,
  MAX_GAP,
  MAX_PATTERN_CHARS,
  type Part,
  type Pattern,
  PatternError,
  type RunRef,
  type Token,
} from "./parse.ts";
export {
  Budget,
  BudgetExceeded,
  type ForwardMemo,
  type MatchSpan,
  type StartRange,
  verifyAt,
} from "./verify.ts";

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

  const anchor = selectAnchor(parts, minGap);
  let minLength = 0;
  parts.forEach((p, i) => {
    minLength += p.minLength + minGap[i]!;
  });
  const simple = parts.length === 1 && parts[0]!.tokens.length === 1;
  return { parts, minGap, anchor, minLength, simple };
}
