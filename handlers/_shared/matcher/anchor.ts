/**
 * Anchor choice: the fixed bytes of a pattern the multi-pattern index looks
 * for. Every match contains its anchor, so the index fires at least once per
 * occurrence; how often it fires *without* a match is what the choice
 * controls. Machine-code signatures contain common x86 sequences
 * (`0f1f8400` is a NOP, `85c00f84` is test/je): a static "bytes 00 and ff are
 * common" rule picked them and cost ~200,000 verifications per MB of ELF.
 * The window chosen here is the one with the most bits of surprise under
 * a byte-pair model measured on real executables and data (byte-freq.ts),
 * and the bytes next to it become an extension word the index compares
 * before reporting a candidate.
 */
import { windowBits } from "./byte-freq.ts";
import {
  ANCHOR_BYTES,
  type Anchor,
  type ExactRun,
  exactRuns,
  type Part,
  runBytes,
  type Token,
} from "./parse.ts";

type BytesToken = Extract<Token, { kind: "bytes" }>;

/** Most surprising 4-byte exact window over all parts; failing that, the longest 2–3 byte run. */
export function selectAnchor(parts: Part[], minGap: number[]): Anchor {
  let best: { pi: number; r: ExactRun; w: number; len: number; sMin: number; sMax: number } | undefined;
  let bestBits = -1;
  let sMin = 0;
  let sMax = 0;
  parts.forEach((part, pi) => {
    if (pi > 0) {
      sMin += parts[pi - 1]!.minLength + minGap[pi]!;
      sMax = Infinity;
    }
    for (const r of exactRuns(part.tokens)) {
      const bytes = (part.tokens[r.token] as BytesToken).bytes;
      if (r.length < ANCHOR_BYTES) {
        // Short runs only count while no 4-byte window exists; longer is better.
        if (bestBits < 0 && (!best || r.length > best.len)) best = { pi, r, w: 0, len: r.length, sMin, sMax };
        continue;
      }
      for (let w = 0; w + ANCHOR_BYTES <= r.length; w++) {
        const bits = windowBits(bytes, r.offset + w, ANCHOR_BYTES);
        if (bits > bestBits) {
          bestBits = bits;
          best = { pi, r, w, len: ANCHOR_BYTES, sMin, sMax };
        }
      }
    }
  });
  const b = best!;
  const tokens = parts[b.pi]!.tokens;
  const len = Math.min(b.len, ANCHOR_BYTES);
  const ab = runBytes(tokens, b.r, len, b.w);
  const offset = b.r.offset + b.w;
  return {
    part: b.pi,
    token: b.r.token,
    offset,
    bytes: ab,
    prefixMin: b.r.prefixMin + b.w,
    prefixMax: b.r.prefixMax + b.w,
    key:
      len === ANCHOR_BYTES
        ? ((ab[0]! << 24) | (ab[1]! << 16) | (ab[2]! << 8) | ab[3]!) >>> 0
        : (ab[0]! << 8) | ab[1]!,
    startMin: b.sMin + b.r.prefixMin + b.w,
    startMax: b.sMax + b.r.prefixMax + b.w,
    ext: len === ANCHOR_BYTES ? extension(tokens[b.r.token] as BytesToken, offset) : null,
  };
}

/**
 * Four bytes of the anchor's own token beside it (after it when there are
 * four, else before, else the partial run after), masked as the token is.
 */
function extension(tok: BytesToken, at: number): Anchor["ext"] {
  const n = tok.bytes.length;
  let from: number;
  if (at + 2 * ANCHOR_BYTES <= n) from = at + ANCHOR_BYTES;
  else if (at >= ANCHOR_BYTES) from = at - ANCHOR_BYTES;
  else if (at + ANCHOR_BYTES < n) from = at + ANCHOR_BYTES;
  else return null;
  let value = 0;
  let mask = 0;
  for (let i = 0; i < 4; i++) {
    const j = from + i;
    const m = j < n ? (tok.mask ? tok.mask[j]! : 0xff) : 0;
    const v = j < n ? tok.bytes[j]! & m : 0;
    value = (value << 8) | v;
    mask = (mask << 8) | m;
  }
  if (mask === 0) return null;
  return { offset: from - at, value: value >>> 0, mask: mask >>> 0 };
}
