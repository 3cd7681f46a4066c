/**
 * What `contentctl release status`, the console and the CLI's JSON show of
 * releases: per group its phase, soak end, health verdict and share, and
 * the scheduler's notes on what comes next. Pure over the release state,
 * the fleet view and the health snapshot the engine passes in.
 */
import { readRepoIndex } from "../core/repo/publish.ts";
import type { ReleaseConfig } from "./config.ts";
import type { GroupHealth, Verdict } from "./health.ts";
import { type HealthSnapshot, judgeGroup, type Note, soakEndsAt } from "./plan.ts";
import type { Release, ReleaseState } from "./state.ts";

/** Finished releases shown after the active ones. */
const FINISHED_SHOWN = 10;

export interface GroupView {
  name: string;
  /** "reverting": the release is aborted and this group is still being taken back (seen mid-abort). */
  phase: "pending" | "publishing" | "live" | "soaked" | "reverting" | "reverted" | "untouched";
  publishedAt: string | null;
  soakEndsAt: string | null;
  revertedAt: string | null;
  health: GroupHealth | null;
  verdict: Verdict | null;
  share: number | null;
  reason: string | null;
}

export interface ReleaseView {
  id: string;
  type: string;
  version: number;
  status: Release["status"];
  startedAt: string;
  finishedAt: string | null;
  abort: { at: string; reason: string; by: string; revertVersion: number } | null;
  groups: GroupView[];
  next: string[];
  health: Release["health"];
  log: Release["log"];
}

export interface ReleaseStatusView {
  now: string;
  threshold: number;
  groups: {
    name: string;
    promote: "manual" | "auto";
    soakMinutes: number;
    description: string | null;
    agents: number;
    content: Record<string, number>;
  }[];
  releases: ReleaseView[];
}

export function statusView(i: {
  config: ReleaseConfig;
  state: ReleaseState;
  /** Active agents per group (fleet store). */
  activeByGroup: Map<string, number>;
  health: HealthSnapshot;
  notes: Note[];
  now: Date;
}): ReleaseStatusView {
  const { config, state, activeByGroup: perGroup, health, notes, now } = i;
  const finished = state.releases.filter((r) => r.status !== "active").slice(-FINISHED_SHOWN);
  const shown = [...state.releases.filter((r) => r.status === "active"), ...finished.reverse()];
  return {
    now: now.toISOString(),
    threshold: config.health.threshold,
    groups: config.groups.map((g) => {
      const index = readRepoIndex(config.paths.repo, g.name);
      return {
        name: g.name,
        promote: g.promote,
        soakMinutes: g.soakMinutes,
        description: g.description ?? null,
        agents: perGroup.get(g.name) ?? 0,
        content: Object.fromEntries(Object.entries(index?.content ?? {}).map(([t, e]) => [t, e.version])),
      };
    }),
    releases: shown.map((r) => releaseView(r, now, health, notes, config)),
  };
}

export function releaseView(
  r: Release,
  now: Date,
  health: HealthSnapshot,
  notes: Note[],
  config: ReleaseConfig,
): ReleaseView {
  return {
    id: r.id,
    type: r.type,
    version: r.version,
    status: r.status,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    abort: r.abort
      ? { at: r.abort.at, reason: r.abort.reason, by: r.abort.by, revertVersion: r.abort.revertVersion }
      : null,
    groups: r.groups.map((g, i): GroupView => {
      const ends = soakEndsAt(r, i, config);
      const h = health[r.id]?.[g.name] ?? null;
      const j = h ? judgeGroup(r, g.name, config, health) : null;
      let phase: GroupView["phase"] = "pending";
      if (g.revertedAt) phase = "reverted";
      else if (r.status === "aborted" && (g.publishedAt || g.before !== undefined)) phase = "reverting";
      else if (g.publishedAt) phase = ends !== null && now.getTime() >= ends ? "soaked" : "live";
      else if (g.before !== undefined) phase = "publishing";
      else if (r.status !== "active") phase = "untouched";
      return {
        name: g.name,
        phase,
        publishedAt: g.publishedAt,
        soakEndsAt: ends === null ? null : new Date(ends).toISOString(),
        revertedAt: g.revertedAt,
        health: h,
        verdict: j?.verdict ?? null,
        share: j ? j.share : null,
        reason: j?.reason ?? null,
      };
    }),
    next: notes.filter((n) => n.release === r.id).map((n) => n.text),
    health: r.health,
    log: r.log.slice(-30),
  };
}
