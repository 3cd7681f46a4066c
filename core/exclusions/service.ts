/**
 * The exclusion service: one per agent (`agent.exclusions`). It holds the
 * exclusions of every source, checked by rules.ts, and hands features one
 * ExclusionMatcher built from all of them (swapped whole on every change).
 *
 * Sources and precedence: generated sources are owned by one producer
 * ("APPFEED", "USERAPPFEED"; one source per rule, "APPFEED:<rule>") and
 * replaced together with `replace()`; local config is source "config".
 * When two sources exclude the same (kind, value) with different scopes,
 * the first in PRECEDENCE wins — vendor rules over the administrator's, and
 * both over local config — so a tenant rule can never widen a vendor scope.
 *
 * A producer may be *held*: its content is installed but its rules may not
 * run (USERAPPFEED without a verified tenant signature). It then has no
 * exclusions, and the hold's code and message are kept with the set so
 * `agent exclusions` and `agent status` say why.
 *
 * Generated exclusions persist in STATE/exclusions.json (atomic write): a
 * restart, or an offline `agent exclusions`, sees the last good set.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  EXCLUSION_KINDS,
  EXCLUSION_SCOPES,
  type Exclusion,
  type ExclusionInput,
} from "../exclusions-config.ts";
import { atomicWriteFile } from "../fsutil.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import { ExclusionMatcher } from "./matcher.ts";
import { checkExclusion, type Refusal } from "./rules.ts";

export const PRECEDENCE = ["APPFEED", "USERAPPFEED", "config"] as const;
export const EXCLUSIONS_FILE = "exclusions.json";

export interface RefusedExclusion extends Refusal {
  source: string;
  kind?: string;
  value?: string;
}

/** What `replace` does with one source: new exclusions, or keep what it had (its rule failed). */
export type SourceUpdate = { exclusions: ExclusionInput[] } | { keep: true; error: string };

/** Why a producer generated nothing: its rules were held, not run. */
export interface ProducerHold {
  code: string;
  message: string;
}

export interface ExclusionSummary {
  count: number;
  /** SHA-256 of the effective list in canonical order (the fleet compares it). */
  hash: string;
  bySource: Record<string, number>;
  refused: number;
  shadowed: number;
  updatedAt: string | null;
  /** Producers whose rules are held (not run), with the hold's code. Absent when none is. */
  held?: Record<string, string>;
}

const PersistedSchema = lazySchema(() =>
  z.object({
    schema: z.literal(1),
    updatedAt: z.string(),
    sources: z.record(
      z.string(),
      z.array(
        z.object({
          kind: z.enum(EXCLUSION_KINDS),
          value: z.string(),
          scope: z.array(z.enum(EXCLUSION_SCOPES)),
          reason: z.string(),
          source: z.string(),
        }),
      ),
    ),
    refused: z.array(z.looseObject({ source: z.string(), rule: z.string(), reason: z.string() })),
    held: z.optional(z.record(z.string(), z.object({ code: z.string(), message: z.string() }))),
  }),
);

const owner = (source: string) => source.split(":")[0]!;
const rank = (source: string) => {
  const i = (PRECEDENCE as readonly string[]).indexOf(owner(source));
  return i < 0 ? PRECEDENCE.length : i;
};

export interface ExclusionServiceOptions {
  stateDir: string;
  config: readonly ExclusionInput[];
  /** The agent's own executable, install dir and state dir (rule X3). */
  protectedPaths: readonly string[];
  /** Read-only callers (an offline `agent exclusions`) never write. */
  readOnly?: boolean;
  now?: () => Date;
}

export class ExclusionService {
  private sources = new Map<string, Exclusion[]>();
  private refusedList: RefusedExclusion[] = [];
  private heldBy = new Map<string, ProducerHold>();
  private effectiveList: Exclusion[] = [];
  private shadowed = 0;
  private current: ExclusionMatcher = ExclusionMatcher.empty;
  private cachedSummary?: ExclusionSummary;
  private updatedAt: string | null = null;
  private readonly listeners = new Set<(s: ExclusionSummary) => void>();
  private readonly now: () => Date;
  /** A problem reading the persisted set (reported in status; the file is left for inspection). */
  loadProblem?: string;

  constructor(private readonly o: ExclusionServiceOptions) {
    this.now = o.now ?? (() => new Date());
    const configRefused: RefusedExclusion[] = [];
    this.sources.set("config", this.checkAll("config", o.config, configRefused));
    this.refusedList = configRefused;
    this.restore();
    this.rebuild();
  }

  /** The matcher features consult on every event (never cache it: it is replaced on change). */
  get matcher(): ExclusionMatcher {
    return this.current;
  }

  list(): Exclusion[] {
    return this.effectiveList;
  }

  refused(): RefusedExclusion[] {
    return this.refusedList;
  }

  /** Producers whose rules are held, with why. */
  held(): Record<string, ProducerHold> {
    return Object.fromEntries(this.heldBy);
  }

  /** Computed once per change (status and every heartbeat ask for it; hashing 100k entries is not free). */
  summary(): ExclusionSummary {
    if (this.cachedSummary) return this.cachedSummary;
    const bySource: Record<string, number> = {};
    for (const e of this.effectiveList) bySource[owner(e.source)] = (bySource[owner(e.source)] ?? 0) + 1;
    this.cachedSummary = {
      count: this.effectiveList.length,
      hash: new Bun.CryptoHasher("sha256").update(JSON.stringify(this.effectiveList)).digest("hex"),
      bySource,
      refused: this.refusedList.length,
      shadowed: this.shadowed,
      updatedAt: this.updatedAt,
      ...(this.heldBy.size > 0
        ? { held: Object.fromEntries([...this.heldBy].map(([p, h]) => [p, h.code])) }
        : {}),
    };
    return this.cachedSummary;
  }

  onChange(fn: (s: ExclusionSummary) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Replaces every source of `producer` ("APPFEED") in one step: sources
   * not in `next` disappear, `{ keep }` sources keep their previous
   * exclusions. An exclusion a rule may not make (rules.ts) refuses that
   * rule's whole output: nothing of it is excluded, the refusal is listed.
   * `held` records that the producer's rules were not run (pass no sources with it).
   */
  replace(
    producer: string,
    next: Record<string, SourceUpdate>,
    opts: { held?: ProducerHold } = {},
  ): { refused: RefusedExclusion[] } {
    const sources = new Map([...this.sources].filter(([s]) => owner(s) !== producer));
    const refused = this.refusedList.filter((r) => owner(r.source) !== producer);
    const fresh: RefusedExclusion[] = [];
    for (const [source, update] of Object.entries(next)) {
      if (owner(source) !== producer) throw new Error(`${source} is not a source of ${producer}`);
      if ("keep" in update) {
        const previous = this.sources.get(source);
        if (previous) sources.set(source, previous);
        continue;
      }
      const bad: RefusedExclusion[] = [];
      const ok = this.checkAll(source, update.exclusions, bad);
      if (bad.length > 0) fresh.push(...bad);
      else sources.set(source, ok);
    }
    this.sources = sources;
    this.refusedList = [...refused, ...fresh];
    if (opts.held) this.heldBy.set(producer, opts.held);
    else this.heldBy.delete(producer);
    this.updatedAt = this.now().toISOString();
    this.cachedSummary = undefined;
    this.rebuild();
    this.persist();
    const s = this.summary();
    for (const fn of this.listeners) fn(s);
    return { refused: fresh };
  }

  private checkAll(source: string, inputs: readonly unknown[], refused: RefusedExclusion[]): Exclusion[] {
    const out: Exclusion[] = [];
    for (const input of inputs) {
      const r = checkExclusion(input, source, this.o.protectedPaths);
      if ("ok" in r) out.push(r.ok);
      else {
        const i = (input ?? {}) as { kind?: unknown; value?: unknown };
        refused.push({
          source,
          ...r.refused,
          ...(typeof i.kind === "string" ? { kind: i.kind } : {}),
          ...(typeof i.value === "string" ? { value: i.value } : {}),
        });
      }
    }
    return out;
  }

  private rebuild(): void {
    const ordered = [...this.sources.keys()].sort(
      (a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0),
    );
    const seen = new Set<string>();
    const list: Exclusion[] = [];
    let shadowed = 0;
    for (const source of ordered) {
      for (const e of this.sources.get(source) ?? []) {
        const key = `${e.kind}\0${e.value}`;
        if (seen.has(key)) {
          shadowed++;
          continue;
        }
        seen.add(key);
        list.push(e);
      }
    }
    this.effectiveList = list;
    this.shadowed = shadowed;
    this.cachedSummary = undefined;
    this.current = new ExclusionMatcher(list);
  }

  private persist(): void {
    if (this.o.readOnly) return;
    const generated = Object.fromEntries([...this.sources].filter(([s]) => s !== "config"));
    atomicWriteFile(
      join(this.o.stateDir, EXCLUSIONS_FILE),
      `${JSON.stringify({
        schema: 1,
        updatedAt: this.updatedAt,
        sources: generated,
        refused: this.refusedList.filter((r) => r.source !== "config"),
        ...(this.heldBy.size > 0 ? { held: Object.fromEntries(this.heldBy) } : {}),
      })}\n`,
      0o600,
    );
  }

  /** The last persisted generated set; rechecked, since the agent's protected paths may have moved. */
  private restore(): void {
    const file = join(this.o.stateDir, EXCLUSIONS_FILE);
    if (!existsSync(file)) return;
    try {
      const p = PersistedSchema.parse(JSON.parse(readFileSync(file, "utf8")));
      for (const [source, list] of Object.entries(p.sources)) {
        if (source === "config") continue;
        const bad: RefusedExclusion[] = [];
        const ok = this.checkAll(
          source,
          list.map(({ source: _s, ...e }) => e),
          bad,
        );
        if (bad.length === 0) this.sources.set(source, ok);
        this.refusedList.push(...bad);
      }
      this.refusedList.push(...(p.refused as RefusedExclusion[]));
      for (const [producer, hold] of Object.entries(p.held ?? {})) this.heldBy.set(producer, hold);
      this.updatedAt = p.updatedAt;
    } catch (e) {
      this.loadProblem = `${file}: ${(e as Error).message}`;
    }
  }
}
