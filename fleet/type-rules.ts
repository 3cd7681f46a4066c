/**
 * Per-type release rules: some content deserves more gates than the fleet
 * default. The seed releases ML models "more gradually and with more
 * gates"; a type can ask for (pure functions, one rule id each, tested in
 * type-rules.test.ts):
 *
 *   T1  its own group list: the config's groups, with `manualGroups` forced to
 *       manual promotion, `extraGroups` inserted after their `after` group, and
 *       every soak multiplied by `soakFactor`
 *   T2  a lower health threshold: min(the fleet's, the type's)
 *   T3  (live models) a release carrying a live model starts only after a
 *       release of the same type carried that model in telemetry mode for at
 *       least `liveGate.minTelemetryMinutes`, and was not aborted
 *   T4  … and the fleet's telemetry for that model shows at least
 *       `liveGate.minScores` scores with a share over its threshold of at
 *       most `liveGate.maxDetectionRate` (what the live twin would detect)
 *
 * Documented in docs/rollout.md ("Per-type rules").
 */
import { z } from "zod";
import { lazySchema } from "../core/schema/lazy-schema.ts";
// Type-only: config.ts imports this file's schema, so a value import back would be a load-order cycle.
import type { GroupConfig } from "./config.ts";

/** How long a group runs a new version, healthy, before the next group may get it (at most 30 days). */
export const SoakMinutesSchema = lazySchema(() =>
  z
    .number()
    .int()
    .min(0)
    .max(30 * 1440)
    .default(360),
);

const ExtraGroupSchema = lazySchema(() =>
  z
    .object({
      name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/),
      promote: z.enum(["manual", "auto"]).default("manual"),
      soakMinutes: SoakMinutesSchema,
      description: z.string().max(200).optional(),
      /** Inserted after this group (default: first). */
      after: z.string().optional(),
    })
    .strict(),
);

export const LiveGateSchema = lazySchema(() =>
  z
    .object({
      minTelemetryMinutes: z
        .number()
        .int()
        .min(0)
        .max(365 * 1440)
        .default(3 * 1440),
      maxDetectionRate: z.number().min(0).max(1).default(0.001),
      minScores: z.number().int().min(0).default(1000),
    })
    .strict(),
);

export const TypeRulesSchema = lazySchema(() =>
  z
    .object({
      manualGroups: z.array(z.string()).default([]),
      extraGroups: z.array(ExtraGroupSchema).max(16).default([]),
      soakFactor: z.number().min(1).max(30).default(1),
      healthThreshold: z.number().min(0).max(1).optional(),
      liveGate: LiveGateSchema.optional(),
    })
    .strict(),
);

export type TypeRules = z.infer<typeof TypeRulesSchema>;

/**
 * ML models: a second manual public step, double soaks, a 0.2 % threshold, three days in telemetry first.
 * Agent software (issue 20): every public step manual, triple soaks, a 0.1 % threshold — a bad build costs
 * a restart and a rollback on each host it reaches, so it reaches them slowest of all.
 */
export const DEFAULT_TYPE_RULES: Record<string, z.input<typeof TypeRulesSchema>> = {
  AgentSoftware: {
    manualGroups: ["public-1", "public-2", "public-3", "public-4"],
    soakFactor: 3,
    healthThreshold: 0.001,
  },
  MLModel: {
    manualGroups: ["public-2"],
    soakFactor: 2,
    healthThreshold: 0.002,
    liveGate: { minTelemetryMinutes: 3 * 1440, maxDetectionRate: 0.001, minScores: 1000 },
  },
};

export const TypesConfigSchema = lazySchema(() =>
  z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/), TypeRulesSchema).prefault(DEFAULT_TYPE_RULES),
);

interface WithTypes {
  groups: GroupConfig[];
  types?: Record<string, TypeRules>;
}

/** T1: the ordered groups a release of `type` goes through, with their gates. */
export function groupsFor(config: WithTypes, type: string): GroupConfig[] {
  const rules = config.types?.[type];
  if (!rules) return config.groups;
  const out: GroupConfig[] = config.groups.map((g) => ({
    ...g,
    promote: rules.manualGroups.includes(g.name) ? "manual" : g.promote,
  }));
  for (const { after, ...extra } of rules.extraGroups) {
    const i = after === undefined ? -1 : out.findIndex((g) => g.name === after);
    // No anchor: first; an anchor that is not a group: last (never silently earlier than asked).
    // A type's extra group (a canary) is open to any tenant's enrolled agents unless the config says otherwise.
    out.splice(after === undefined ? 0 : i < 0 ? out.length : i + 1, 0, { vendorOnly: false, ...extra });
  }
  return out.map((g) => ({ ...g, soakMinutes: Math.round(g.soakMinutes * rules.soakFactor) }));
}

/** T2: the health threshold a release of `type` is judged against. */
export function thresholdFor(
  config: { health: { threshold: number }; types?: Record<string, TypeRules> },
  type: string,
): number {
  const t = config.types?.[type]?.healthThreshold;
  return t === undefined ? config.health.threshold : Math.min(t, config.health.threshold);
}

export interface ModelRef {
  name: string;
  mode: "telemetry" | "live";
}

/** The release history T3 reads: type, models carried, when started, whether aborted. */
export interface ReleaseFacts {
  type: string;
  version: number;
  startedAt: string;
  status: "active" | "completed" | "aborted" | "closed";
  models?: ModelRef[];
}

/** Fleet telemetry for one model since a time: scores counted and how many were over its threshold. */
export interface ModelEvidence {
  scores: number;
  over: number;
  agents: number;
}

export interface GateVerdict {
  allowed: boolean;
  /** One line per live model: why it may or may not start. */
  reasons: string[];
}

/** T3 + T4 for the live models of a release about to start. */
export function liveGate(
  rules: TypeRules | undefined,
  type: string,
  models: ModelRef[],
  history: ReleaseFacts[],
  evidence: (model: string, since: string) => ModelEvidence,
  now: Date,
): GateVerdict {
  const gate = rules?.liveGate;
  const live = models.filter((m) => m.mode === "live");
  if (!gate || live.length === 0) return { allowed: true, reasons: [] };
  const reasons: string[] = [];
  let allowed = true;
  for (const m of live) {
    // T3: the earliest non-aborted release of this type that carried the model in telemetry mode. A release an
    // operator closed (stuck, never completed) is no evidence either.
    const telemetry = history
      .filter((r) => r.type === type && r.status !== "aborted" && r.status !== "closed")
      .filter((r) => r.models?.some((x) => x.name === m.name && x.mode === "telemetry"))
      .sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt))[0];
    if (!telemetry) {
      allowed = false;
      reasons.push(`T3 ${m.name}: no release has run it in telemetry mode; release a telemetry twin first`);
      continue;
    }
    const minutes = (now.getTime() - Date.parse(telemetry.startedAt)) / 60_000;
    if (minutes < gate.minTelemetryMinutes) {
      allowed = false;
      const ready = new Date(Date.parse(telemetry.startedAt) + gate.minTelemetryMinutes * 60_000);
      reasons.push(
        `T3 ${m.name}: in telemetry since ${telemetry.startedAt} (v${telemetry.version}), ${Math.floor(minutes)} of ${gate.minTelemetryMinutes} minutes; not before ${ready.toISOString()}`,
      );
      continue;
    }
    // T4
    const e = evidence(m.name, telemetry.startedAt);
    const rate = e.scores ? e.over / e.scores : 0;
    if (e.scores < gate.minScores) {
      allowed = false;
      reasons.push(
        `T4 ${m.name}: ${e.scores} telemetry scores from ${e.agents} agents; at least ${gate.minScores} needed`,
      );
    } else if (rate > gate.maxDetectionRate) {
      allowed = false;
      reasons.push(
        `T4 ${m.name}: ${e.over} of ${e.scores} telemetry scores over threshold (${pct(rate)}); the live twin may detect at most ${pct(gate.maxDetectionRate)}`,
      );
    } else {
      reasons.push(
        `${m.name}: ${Math.floor(minutes)} minutes in telemetry, ${e.over} of ${e.scores} over threshold (${pct(rate)} ≤ ${pct(gate.maxDetectionRate)})`,
      );
    }
  }
  return { allowed, reasons };
}

function pct(x: number): string {
  return `${(x * 100).toFixed(3)}%`;
}
