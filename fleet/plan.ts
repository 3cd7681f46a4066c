/**
 * The release scheduler as a pure function: (state, config, now, health) →
 * actions. No I/O, no clock of its own, so every promotion and abort rule is
 * tested with made-up fleets and times; the engine (engine.ts) carries the
 * actions out and records them. Rules:
 *
 *   S1  any live group of an active release judged unhealthy → abort
 *   S2  an interrupted publish (intent recorded, not finished) → finish it
 *   S3  the next group is entered automatically only if its gate is "auto",
 *       the current group has soaked for its soak time, and it is healthy
 *       (enough exposed agents, enough adoption, affected share ≤ threshold)
 *   S4  a manual gate waits for `release promote`
 *   S5  the last group, soaked and healthy → the release is complete
 *   S6  an aborted release with groups not yet taken back → revert them
 *   S7  a group index that expires within `resignHours` → re-sign it (agents
 *       refuse expired indexes, R5, whether or not a release is running)
 *   S8  a live group still short of its sample `sampleDeadlineMinutes` after
 *       the release reached it → tell the operator once (log, alert, audit),
 *       instead of waiting silently (gate G6)
 */
import type { GroupConfig, ReleaseConfig } from "./config.ts";
import { type GroupHealth, type Judgement, judge } from "./health.ts";
import type { Release, ReleaseState } from "./state.ts";
import { groupsFor, type TypeRules, thresholdFor } from "./type-rules.ts";

export type Action =
  | { kind: "promote"; release: string; group: string; reason: string }
  | { kind: "abort"; release: string; reason: string }
  | { kind: "revert"; release: string; group: string }
  | { kind: "complete"; release: string; reason: string }
  | { kind: "resign"; group: string; reason: string }
  | { kind: "stalled"; release: string; group: string; reason: string };

export interface Note {
  release: string;
  group?: string;
  text: string;
}

/** Release id → group → health of that release in that group. */
export type HealthSnapshot = Record<string, Record<string, GroupHealth>>;

export interface Plan {
  actions: Action[];
  notes: Note[];
}

const FALLBACK_GROUP: Omit<GroupConfig, "name"> = { promote: "manual", soakMinutes: 360, vendorOnly: false };

type TypesOf = { types?: Record<string, TypeRules> };

/** A group's gate and soak; for a release of `type`, after that type's rules (T1, type-rules.ts). */
export function groupConfig(config: Pick<ReleaseConfig, "groups">, name: string, type?: string): GroupConfig {
  const groups = type === undefined ? config.groups : groupsFor(config as typeof config & TypesOf, type);
  // A group dropped from the config mid-release is treated as manual: never promote blindly.
  return groups.find((g) => g.name === name) ?? { name, ...FALLBACK_GROUP };
}

export function judgeGroup(
  release: Release,
  group: string,
  config: Pick<ReleaseConfig, "health">,
  health: HealthSnapshot,
): Judgement {
  const h = health[release.id]?.[group] ?? {
    group,
    agents: 0,
    reporting: 0,
    exposed: 0,
    adopted: 0,
    affected: 0,
  };
  // T2: a type with its own (lower) threshold is judged by it.
  return judge(h, {
    ...config.health,
    threshold: thresholdFor(config as typeof config & TypesOf, release.type),
  });
}

export function soakEndsAt(
  release: Release,
  index: number,
  config: Pick<ReleaseConfig, "groups">,
): number | null {
  const g = release.groups[index];
  if (!g?.publishedAt) return null;
  return Date.parse(g.publishedAt) + groupConfig(config, g.name, release.type).soakMinutes * 60_000;
}

/** Index of the last group the release has been published to, or -1. */
export function currentGroupIndex(release: Release): number {
  let last = -1;
  release.groups.forEach((g, i) => {
    if (g.publishedAt) last = i;
  });
  return last;
}

/** Facts about the repository the scheduler judges: each group index's expiry (ms), when it has one. */
export interface RepoFacts {
  indexExpires: Record<string, number>;
}

export function plan(
  state: ReleaseState,
  config: Pick<ReleaseConfig, "groups" | "health" | "resignHours">,
  now: Date,
  health: HealthSnapshot,
  repo: RepoFacts = { indexExpires: {} },
): Plan {
  const out: Plan = { actions: [], notes: [] };
  // S7
  for (const g of config.groups) {
    const expires = repo.indexExpires[g.name];
    if (expires !== undefined && expires - now.getTime() < config.resignHours * 3600_000) {
      out.actions.push({
        kind: "resign",
        group: g.name,
        reason: `index expires ${new Date(expires).toISOString()}`,
      });
    }
  }
  for (const r of state.releases) {
    if (r.status === "aborted") {
      // S6
      for (const g of r.groups) {
        if ((g.publishedAt || g.before !== undefined) && !g.revertedAt) {
          out.actions.push({ kind: "revert", release: r.id, group: g.name });
        }
      }
      continue;
    }
    if (r.status !== "active") continue;
    planActive(r, config, now, health, out);
  }
  return out;
}

function planActive(
  r: Release,
  config: Pick<ReleaseConfig, "groups" | "health">,
  now: Date,
  health: HealthSnapshot,
  out: Plan,
): void {
  planStalled(r, config, now, health, out);
  // S1: health first — a release going bad is stopped whatever else is pending.
  for (const g of r.groups) {
    if (!g.publishedAt) continue;
    const j = judgeGroup(r, g.name, config, health);
    if (j.verdict === "unhealthy") {
      out.actions.push({ kind: "abort", release: r.id, reason: j.reason });
      return;
    }
  }
  // S2
  const interrupted = r.groups.find((g) => g.before !== undefined && !g.publishedAt);
  if (interrupted) {
    out.actions.push({
      kind: "promote",
      release: r.id,
      group: interrupted.name,
      reason: "resuming an interrupted publish",
    });
    return;
  }
  const i = currentGroupIndex(r);
  const current = r.groups[i];
  if (!current) {
    out.notes.push({ release: r.id, text: "not published to any group yet" });
    return;
  }
  const ends = soakEndsAt(r, i, config) ?? 0;
  const j = judgeGroup(r, current.name, config, health);
  const next = r.groups[i + 1];
  const soaking = now.getTime() < ends;
  if (!next) {
    // S5
    if (!soaking && j.verdict === "healthy") {
      out.actions.push({
        kind: "complete",
        release: r.id,
        reason: `last group ${current.name} soaked: ${j.reason}`,
      });
    } else {
      out.notes.push({
        release: r.id,
        group: current.name,
        text: soaking
          ? `soaking in ${current.name} until ${new Date(ends).toISOString()}`
          : `holding: ${j.reason}`,
      });
    }
    return;
  }
  const gate = groupConfig(config, next.name, r.type);
  if (gate.promote === "manual") {
    // S4
    out.notes.push({
      release: r.id,
      group: next.name,
      text: `awaiting manual promotion to ${next.name} (${current.name}: ${j.verdict}${soaking ? `, soaking until ${new Date(ends).toISOString()}` : ""})`,
    });
    return;
  }
  // S3
  if (soaking) {
    out.notes.push({
      release: r.id,
      group: current.name,
      text: `soaking in ${current.name} until ${new Date(ends).toISOString()}, then ${next.name}`,
    });
    return;
  }
  if (j.verdict !== "healthy") {
    out.notes.push({ release: r.id, group: current.name, text: `holding before ${next.name}: ${j.reason}` });
    return;
  }
  out.actions.push({
    kind: "promote",
    release: r.id,
    group: next.name,
    reason: `${current.name} soaked: ${j.reason}`,
  });
}

/** S8: groups that cannot reach their sample in time are reported once each (the release log remembers). */
function planStalled(
  r: Release,
  config: Pick<ReleaseConfig, "groups" | "health">,
  now: Date,
  health: HealthSnapshot,
  out: Plan,
): void {
  const deadlineMs = config.health.sampleDeadlineMinutes * 60_000;
  for (const g of r.groups) {
    if (!g.publishedAt || now.getTime() - Date.parse(g.publishedAt) < deadlineMs) continue;
    if (r.log.some((l) => l.event === "stalled" && l.group === g.name)) continue;
    const j = judgeGroup(r, g.name, config, health);
    const short = j.verdict === "no-data" || (j.verdict === "waiting" && j.sample < j.required);
    if (!short) continue;
    out.actions.push({
      kind: "stalled",
      release: r.id,
      group: g.name,
      reason: `${g.name} has not reached its sample ${config.health.sampleDeadlineMinutes} min after the release reached it: ${j.reason}`,
    });
  }
}
