/**
 * The ESH matcher: lines arrive per log source, every rule naming that
 * source is tried on each line, and a rule whose pattern matched at least
 * `minCount` times within `windowSeconds` opens a finding. A finding is
 * cleared when its pattern has not matched for the quiet window.
 *
 * Matching is RE2 (linear in the line length whatever the pattern). Most
 * lines match no rule, so each source first looks for the literals every
 * match must contain (prefilter.ts), then runs one combined alternation of
 * all its rules' patterns; only a line that passes both is tried rule by
 * rule. Lines are capped at MAX_LINE_CHARS (a runaway log line costs a
 * bounded amount of work).
 */
import type { RE2JS } from "re2js";
import { literalPrefilter } from "./prefilter.ts";
import { compilePattern, type ParsedRule } from "./rules.ts";

export const MAX_LINE_CHARS = 16 * 1024;

export interface Finding {
  ruleId: string;
  kba: { id: string; url: string; title: string };
  /** The sources that matched (e.g. "agent", "journal:ssh.service"). */
  sources: string[];
  firstSeen: string;
  lastSeen: string;
  /** Matches since the finding opened (including the minCount that opened it). */
  count: number;
  minCount: number;
  windowSeconds: number;
}

interface Compiled {
  rule: ParsedRule;
  re: RE2JS;
  /** This rule's own literal prefilter: a line without them cannot match it. */
  literals: RegExp | null;
  /** Times (ms) of the latest matches within the window, at most minCount of them. */
  hits: number[];
  finding?: Finding;
}

interface SourceRules {
  rules: Compiled[];
  /** Literals one of which every match contains (prefilter.ts); null: every line goes to RE2. */
  literals: RegExp | null;
  /** One alternation of all patterns; null when it does not compile as one (then every rule runs). */
  any: RE2JS | null;
}

export interface FeedResult {
  opened: Finding[];
  updated: Finding[];
}

export class EshEngine {
  private readonly compiled: Compiled[];
  private readonly bySource = new Map<string, SourceRules>();
  readonly counters = { lines: 0, matchedLines: 0, matches: 0, truncatedLines: 0 };

  constructor(rules: readonly ParsedRule[]) {
    this.compiled = rules.map((rule) => {
      const re = compilePattern(rule.pattern);
      if (typeof re === "string") throw new Error(`${rule.file}:${rule.line}: ${re}`);
      return { rule, re, literals: literalPrefilter([rule.pattern]), hits: [] };
    });
    const groups = new Map<string, Compiled[]>();
    for (const c of this.compiled) {
      for (const s of c.rule.logs) {
        if (!groups.has(s)) groups.set(s, []);
        groups.get(s)!.push(c);
      }
    }
    for (const [source, list] of groups) {
      let any: RE2JS | null = null;
      if (list.length > 1) {
        const combined = compilePattern(list.map((c) => `(?:${c.rule.pattern})`).join("|"));
        any = typeof combined === "string" ? null : combined;
      }
      this.bySource.set(source, {
        rules: list,
        literals: literalPrefilter(list.map((c) => c.rule.pattern)),
        any,
      });
    }
  }

  /** The log sources the rules name ("agent", "journal:UNIT", "file:PATH"). */
  sources(): string[] {
    return [...this.bySource.keys()].sort();
  }

  get ruleCount(): number {
    return this.compiled.length;
  }

  feed(source: string, lines: readonly string[], nowMs: number): FeedResult {
    const out: FeedResult = { opened: [], updated: [] };
    const sr = this.bySource.get(source);
    if (!sr) return out;
    const touched = new Set<Compiled>();
    for (let line of lines) {
      this.counters.lines++;
      if (line.length > MAX_LINE_CHARS) {
        line = line.slice(0, MAX_LINE_CHARS);
        this.counters.truncatedLines++;
      }
      if (sr.literals && !sr.literals.test(line)) continue;
      if (sr.any && !sr.any.test(line)) continue;
      let matched = false;
      for (const c of sr.rules) {
        if (c.literals && !c.literals.test(line)) continue;
        if (!c.re.test(line)) continue;
        this.counters.matches++;
        if (!matched) this.counters.matchedLines++;
        matched = true;
        this.hit(c, source, nowMs, out, touched);
      }
    }
    for (const c of touched) if (c.finding && !out.opened.includes(c.finding)) out.updated.push(c.finding);
    return out;
  }

  private hit(c: Compiled, source: string, now: number, out: FeedResult, touched: Set<Compiled>): void {
    const windowMs = c.rule.windowSeconds * 1000;
    c.hits.push(now);
    while (c.hits.length > 0 && (c.hits.length > c.rule.minCount || c.hits[0]! <= now - windowMs))
      c.hits.shift();
    const at = new Date(now).toISOString();
    if (c.finding) {
      c.finding.count++;
      c.finding.lastSeen = at;
      if (!c.finding.sources.includes(source)) c.finding.sources.push(source);
      touched.add(c);
      return;
    }
    if (c.hits.length < c.rule.minCount) return;
    c.finding = {
      ruleId: c.rule.id,
      kba: { ...c.rule.kba },
      sources: [source],
      firstSeen: new Date(c.hits[0]!).toISOString(),
      lastSeen: at,
      count: c.hits.length,
      minCount: c.rule.minCount,
      windowSeconds: c.rule.windowSeconds,
    };
    out.opened.push(c.finding);
    touched.add(c);
  }

  /** Clears findings quiet for quietMs; returns them. */
  expire(nowMs: number, quietMs: number): Finding[] {
    const cleared: Finding[] = [];
    for (const c of this.compiled) {
      if (c.finding && nowMs - Date.parse(c.finding.lastSeen) >= quietMs) {
        cleared.push(c.finding);
        c.finding = undefined;
        c.hits = [];
      }
    }
    return cleared;
  }

  findings(): Finding[] {
    return this.compiled.flatMap((c) =>
      c.finding ? [{ ...c.finding, sources: [...c.finding.sources] }] : [],
    );
  }
}
