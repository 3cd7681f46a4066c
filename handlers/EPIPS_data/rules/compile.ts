/**
 * Compiles parsed rules into the anchor-index matcher DatasetA uses
 * (handlers/_shared/matcher/matcher.ts): every rule contributes one anchor — the
 * rarest 4-byte window of one of its positive contents — and a packet's
 * payload is scanned once for all anchors of all rules, so the per-byte
 * cost does not grow with the number of rules. `nocase` contents are
 * anchored lower-cased in a second index that scans a lower-cased copy.
 * Rules with no usable anchor (only negated contents, a 1-byte content,
 * pcre only, header only) are checked on every packet; status reports how
 * many there are (`unanchored`) because they are what makes a rule set slow.
 *
 * A candidate is then verified: header (protocol, addresses, ports,
 * direction), flow, the content chain with its offset/depth/distance/within
 * windows, then pcre (re2js, linear time). The content chain backtracks like
 * Suricata's (a later content may need an earlier one matched further on),
 * within a per-packet step budget; a packet that exhausts it is passed and
 * counted (`budgetExceeded`) rather than stalling the queue.
 */
import { type AnchorEntry, AnchorIndex } from "../../_shared/matcher/matcher.ts";
import type { Decoded } from "../packet.ts";
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from "../packet.ts";
import { addrMatches, portMatches } from "./net.ts";
import type { Content, Rule } from "./parse.ts";

/** Bytes that are frequent in network payloads (HTTP/DNS text, padding): poor anchors. */
const BYTE_COST = (() => {
  const cost = new Float64Array(256).fill(1);
  cost[0x00] = 10;
  cost[0xff] = 5;
  cost[0x20] = 5;
  cost[0x0d] = 5;
  cost[0x0a] = 5;
  for (let c = 0x61; c <= 0x7a; c++) cost[c] = 2.5;
  for (let c = 0x41; c <= 0x5a; c++) cost[c] = 2;
  for (let c = 0x30; c <= 0x39; c++) cost[c] = 2;
  for (const c of [0x2f, 0x2e, 0x3a, 0x3d, 0x2d, 0x26]) cost[c] = 3;
  for (const c of "eatoinsrhl") cost[c.charCodeAt(0)] = 3.5;
  return cost;
})();

const lower = (b: number) => (b >= 0x41 && b <= 0x5a ? b | 0x20 : b);

export function lowerBytes(src: Uint8Array, out?: Uint8Array): Uint8Array {
  const o = out ?? new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) o[i] = lower(src[i]!);
  return o;
}

interface CompiledContent extends Content {
  /** Lower-cased bytes when nocase. */
  search: Buffer;
}

interface CompiledRule {
  rule: Rule;
  contents: CompiledContent[];
  needsLower: boolean;
}

export const DEFAULT_STEP_BUDGET = 20_000;

export interface MatchStats {
  candidates: number;
  verified: number;
  budgetExceeded: number;
}

/** Counts, per hashed 4-byte window, how many rules could anchor on it (approximate: a fixed-size table). */
const COUNT_BITS = 22;
const windowSlot = (key: number) => Math.imul(key, 0x9e3779b1) >>> (32 - COUNT_BITS);

interface Window {
  key: number;
  content: number;
  offset: number;
  nocase: boolean;
  cost: number;
}

/** Every 4-byte window of a rule's positive contents (at most 64), with its byte-frequency cost. */
function windowsOf(r: Rule): Window[] {
  const out: Window[] = [];
  r.contents.forEach((c, ci) => {
    if (c.negated || c.bytes.length < 4) return;
    const b = c.bytes;
    for (let w = 0; w + 4 <= b.length && out.length < 64; w++) {
      let cost = 0;
      let key = 0;
      for (let i = w; i < w + 4; i++) {
        const x = c.nocase ? lower(b[i]!) : b[i]!;
        cost += BYTE_COST[x]! + (i > w && b[i] === b[i - 1] ? 3 : 0);
        key = ((key << 8) | x) >>> 0;
      }
      out.push({ key, content: ci, offset: w, nocase: c.nocase, cost });
    }
  });
  return out;
}

/**
 * The anchor: among the rule's windows, the one the fewest other rules share
 * (measured over the whole rule set, so a prefix every HTTP rule has — "GET "
 * — is not chosen when the rule has anything rarer), then the one made of
 * the bytes least frequent in traffic. Contents shorter than 4 bytes give a
 * short anchor only when no 4-byte window exists.
 */
function pickAnchor(
  r: Rule,
  sig: number,
  counts: Uint32Array,
): { entry: AnchorEntry; nocase: boolean } | null {
  let best: Window | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const w of windowsOf(r)) {
    const score = counts[windowSlot(w.key)]! * 64 + w.cost;
    if (score < bestScore) {
      bestScore = score;
      best = w;
    }
  }
  if (best) {
    const c = r.contents[best.content]!;
    const src = c.bytes.slice(best.offset, best.offset + 4);
    const bytes = best.nocase ? lowerBytes(src) : src;
    return { entry: { key: best.key, length: 4, bytes, sig }, nocase: best.nocase };
  }
  let short: Content | undefined;
  for (const c of r.contents) {
    if (!c.negated && c.bytes.length >= 2 && (!short || c.bytes.length > short.bytes.length)) short = c;
  }
  if (!short) return null;
  const bytes = short.nocase ? lowerBytes(short.bytes) : short.bytes.slice();
  return {
    entry: { key: (bytes[0]! << 8) | bytes[1]!, length: bytes.length, bytes, sig },
    nocase: short.nocase,
  };
}

interface Prepared {
  exact: AnchorEntry[];
  nocase: AnchorEntry[];
  always: number[];
  compiled: CompiledRule[];
}

/** Work units between yields: the async build lets a host answer heartbeats while 1M rules compile. */
const YIELD_EVERY = 5000;

/** Anchors and compiled contents of every rule; yields every YIELD_EVERY rules. */
function* prepare(rules: Rule[]): Generator<void, Prepared> {
  const exact: AnchorEntry[] = [];
  const nocase: AnchorEntry[] = [];
  const always: number[] = [];
  const counts = new Uint32Array(1 << COUNT_BITS);
  for (let i = 0; i < rules.length; i++) {
    const seen: number[] = [];
    for (const w of windowsOf(rules[i]!)) {
      const slot = windowSlot(w.key);
      if (!seen.includes(slot)) {
        seen.push(slot);
        counts[slot]!++;
      }
    }
    if (i % YIELD_EVERY === YIELD_EVERY - 1) yield;
  }
  const compiled: CompiledRule[] = new Array(rules.length);
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    const a = pickAnchor(rule, i, counts);
    if (!a) always.push(i);
    else (a.nocase ? nocase : exact).push(a.entry);
    const contents = rule.contents.map((c) => ({
      ...c,
      search: Buffer.from(c.nocase ? lowerBytes(c.bytes) : c.bytes),
    }));
    compiled[i] = { rule, contents, needsLower: contents.some((c) => c.nocase) };
    if (i % YIELD_EVERY === YIELD_EVERY - 1) yield;
  }
  return { exact, nocase, always, compiled };
}

function runSync<T>(g: Generator<void, T>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

/** Builds a RuleSet without holding the event loop for more than a few milliseconds at a time. */
export async function buildRuleSet(rules: Rule[], stepBudget = DEFAULT_STEP_BUDGET): Promise<RuleSet> {
  const g = prepare(rules);
  for (;;) {
    const r = g.next();
    if (r.done) return new RuleSet(rules, stepBudget, r.value);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export class RuleSet {
  readonly rules: CompiledRule[];
  private readonly exact: AnchorIndex;
  private readonly nocase: AnchorIndex;
  /** Rules verified on every packet (no anchor). */
  private readonly always: Uint32Array;
  /** Per-rule "already verified for this packet" stamp. */
  private readonly stamp: Uint32Array;
  private epoch = 0;
  readonly hits: Uint32Array;
  readonly stats: MatchStats = { candidates: 0, verified: 0, budgetExceeded: 0 };
  private lowerScratch = new Uint8Array(65_536);

  constructor(
    rules: Rule[],
    private readonly stepBudget = DEFAULT_STEP_BUDGET,
    prepared?: Prepared,
  ) {
    const { exact, nocase, always, compiled } = prepared ?? runSync(prepare(rules));
    this.rules = compiled;
    this.exact = new AnchorIndex(exact);
    this.nocase = new AnchorIndex(nocase);
    this.always = Uint32Array.from(always);
    this.stamp = new Uint32Array(rules.length);
    this.hits = new Uint32Array(rules.length);
  }

  get unanchored(): number {
    return this.always.length;
  }

  get indexBytes(): number {
    return this.exact.byteLength + this.nocase.byteLength + this.stamp.byteLength + this.hits.byteLength;
  }

  /** Indices of the rules that match this packet (each at most once). */
  match(d: Decoded, toServer: boolean, established: boolean): number[] {
    const out: number[] = [];
    this.epoch = (this.epoch + 1) >>> 0;
    if (this.epoch === 0) {
      this.stamp.fill(0);
      this.epoch = 1;
    }
    const payload = d.payload;
    const raw = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    let lowered: Buffer | null = null;
    const lowerPayload = (): Buffer => {
      if (!lowered) {
        if (this.lowerScratch.length < payload.length) this.lowerScratch = new Uint8Array(payload.length);
        const l = lowerBytes(payload, this.lowerScratch.subarray(0, payload.length));
        lowered = Buffer.from(l.buffer, l.byteOffset, l.byteLength);
      }
      return lowered;
    };
    const budget = { left: this.stepBudget };
    let text: string | null = null;
    const check = (i: number): boolean | undefined => {
      if (this.stamp[i] === this.epoch) return;
      this.stamp[i] = this.epoch;
      this.stats.candidates++;
      const cr = this.rules[i]!;
      if (!headerMatches(cr.rule, d, toServer, established)) return;
      this.stats.verified++;
      const lo = cr.needsLower ? lowerPayload() : raw;
      if (cr.contents.length && !contentChain(cr.contents, 0, -1, raw, lo, budget)) {
        return budget.left <= 0 ? true : undefined;
      }
      if (cr.rule.pcres.length) {
        text ??= raw.toString("latin1");
        for (const p of cr.rule.pcres) if (!p.re.test(text)) return;
      }
      this.hits[i]!++;
      out.push(i);
    };
    if (payload.length > 0) {
      this.exact.scan(payload, (sig) => check(sig) === true);
      // Lower-casing the payload costs a pass over it: only when some rule is anchored nocase.
      if (budget.left > 0 && this.nocase.anchors > 0)
        this.nocase.scan(lowerPayload(), (sig) => check(sig) === true);
    }
    if (budget.left > 0) for (const i of this.always) if (check(i) === true) break;
    if (budget.left <= 0) this.stats.budgetExceeded++;
    return out;
  }
}

function protoMatches(r: Rule, proto: number): boolean {
  switch (r.proto) {
    case "ip":
      return true;
    case "tcp":
      return proto === PROTO_TCP;
    case "udp":
      return proto === PROTO_UDP;
    case "icmp":
      return proto === PROTO_ICMP || proto === PROTO_ICMPV6;
  }
}

export function headerMatches(r: Rule, d: Decoded, toServer: boolean, established: boolean): boolean {
  if (!protoMatches(r, d.proto)) return false;
  if (r.flow.toServer !== undefined && r.flow.toServer !== toServer) return false;
  if (r.flow.established !== undefined && r.flow.established !== established) return false;
  const forward =
    addrMatches(r.src, d.src) &&
    addrMatches(r.dst, d.dst) &&
    portMatches(r.srcPorts, d.sport) &&
    portMatches(r.dstPorts, d.dport);
  if (forward || !r.bidirectional) return forward;
  return (
    addrMatches(r.src, d.dst) &&
    addrMatches(r.dst, d.src) &&
    portMatches(r.srcPorts, d.dport) &&
    portMatches(r.dstPorts, d.sport)
  );
}

/** Content i onwards, the previous content having ended at prevEnd (-1: none yet). */
function contentChain(
  cs: CompiledContent[],
  i: number,
  prevEnd: number,
  raw: Buffer,
  lo: Buffer,
  budget: { left: number },
): boolean {
  if (i === cs.length) return true;
  if (--budget.left <= 0) return false;
  const c = cs[i]!;
  const hay = c.nocase ? lo : raw;
  const n = hay.length;
  const len = c.search.length;
  const relative = c.distance !== undefined || c.within !== undefined;
  let start: number;
  let end: number;
  if (relative && prevEnd >= 0) {
    start = Math.max(0, prevEnd + (c.distance ?? 0));
    end = c.within !== undefined ? Math.min(n, prevEnd + (c.distance ?? 0) + c.within) : n;
  } else {
    start = c.offset ?? 0;
    end = c.depth !== undefined ? Math.min(n, start + c.depth) : n;
  }
  if (c.negated) {
    const at = start + len <= end ? hay.indexOf(c.search, start) : -1;
    if (at >= 0 && at + len <= end) return false;
    return contentChain(cs, i + 1, prevEnd, raw, lo, budget);
  }
  let at = hay.indexOf(c.search, start);
  while (at >= 0 && at + len <= end) {
    if (contentChain(cs, i + 1, at + len, raw, lo, budget)) return true;
    if (budget.left <= 0) return false;
    // Only a later content relative to this one can profit from a later occurrence.
    if (i + 1 < cs.length && cs[i + 1]!.distance === undefined && cs[i + 1]!.within === undefined)
      return false;
    if (i + 1 === cs.length) return false;
    at = hay.indexOf(c.search, at + 1);
  }
  return false;
}
