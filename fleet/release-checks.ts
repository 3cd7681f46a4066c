/**
 * Release checks and health bookkeeping the engine (engine.ts) runs: whether
 * a new version is installable by every group (R10, R11), the health of each
 * active release per group from the fleet (with the gate's vendorOnly rule),
 * and the thinned health samples the console charts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { UpdateError } from "../core/errors.ts";
import { readPackage } from "../core/package/open.ts";
import type { IndexEntry } from "../core/repo/index-format.ts";
import { readRepoIndex } from "../core/repo/publish.ts";
import type { ReleaseConfig } from "./config.ts";
import type { FleetStore } from "./db/fleet-store.ts";
import type { GroupHealth } from "./health.ts";
import { groupConfig, type HealthSnapshot } from "./plan.ts";
import { appendHealth, type ReleaseState } from "./state.ts";

/** Health samples closer together than this are not recorded (the console's resolution). */
const SAMPLE_SPACING_MS = 60_000;

/**
 * A new release must be installable by every group: newer than anything a
 * group lists or has listed (including an abort's re-signed version, R10),
 * and signed no earlier than the packages groups run (R11).
 */
export function checkNewer(
  config: ReleaseConfig,
  state: ReleaseState,
  type: string,
  version: number,
  signingTime: Date,
  file: string,
): void {
  let highest = 0;
  let latestSigned = 0;
  const signedAt = new Map<string, number>();
  for (const r of state.releases) {
    if (r.type !== type) continue;
    highest = Math.max(highest, r.version, r.abort?.revertVersion ?? 0);
    signedAt.set(r.package.sha384, Date.parse(r.package.signingTime));
    for (const ref of Object.values(r.abort?.reverts ?? {}))
      signedAt.set(ref.sha384, Date.parse(ref.signingTime));
  }
  for (const g of config.groups) {
    const listed = readRepoIndex(config.paths.repo, g.name)?.content[type];
    if (!listed) continue;
    highest = Math.max(highest, listed.version);
    latestSigned = Math.max(latestSigned, signedAt.get(listed.sha384) ?? packageCreated(config, listed));
  }
  if (version <= highest) {
    throw new UpdateError(
      "REL_VERSION_NOT_NEWER",
      `${file}: ${type} v${version} is not newer than v${highest}, which groups list or have listed; agents would refuse it (R10) — pack v${highest + 1} or later`,
      { file },
    );
  }
  if (signingTime.getTime() < latestSigned) {
    throw new UpdateError(
      "REL_SIGNED_TOO_EARLY",
      `${file}: signed ${signingTime.toISOString()}, before content groups already run (${new Date(latestSigned).toISOString()}); agents would refuse it (R11) — pack it again`,
      { file },
    );
  }
}

export function packageCreated(config: ReleaseConfig, entry: IndexEntry): number {
  try {
    const bytes = readFileSync(join(config.paths.repo, entry.path));
    // The CMS signingTime agents compare (R11) has whole seconds; `created` has milliseconds.
    return Math.floor(Date.parse(readPackage(bytes, { file: entry.path }).manifest.created) / 1000) * 1000;
  } catch {
    return 0;
  }
}

/** One gate aggregate per (active release, reached group): the fleet store answers, in SQL or in memory. */
export async function healthSnapshot(
  state: ReleaseState,
  fleet: FleetStore,
  now: Date,
  config: ReleaseConfig,
): Promise<HealthSnapshot> {
  const snap: HealthSnapshot = {};
  for (const r of state.releases) {
    if (r.status !== "active") continue;
    const perGroup: Record<string, GroupHealth> = {};
    for (const g of r.groups) {
      if (!g.publishedAt) continue;
      perGroup[g.name] = await fleet.groupHealth({
        type: r.type,
        version: r.version,
        group: g.name,
        since: Date.parse(g.publishedAt),
        now: now.getTime(),
        activeWindowMs: config.health.activeWindowMinutes * 60_000,
        vendorOnly: groupConfig(config, g.name).vendorOnly,
      });
    }
    snap[r.id] = perGroup;
  }
  return snap;
}

export function recordHealth(state: ReleaseState, health: HealthSnapshot, now: Date): void {
  for (const r of state.releases) {
    for (const [group, h] of Object.entries(health[r.id] ?? {})) {
      const last = r.health.findLast((s) => s.group === group);
      if (last && now.getTime() - Date.parse(last.at) < SAMPLE_SPACING_MS) continue;
      appendHealth(r, {
        at: now.toISOString(),
        group,
        agents: h.agents,
        exposed: h.exposed,
        affected: h.affected,
      });
    }
  }
}
