/**
 * Host sandbox problems that are the administrator's to fix, on the health
 * board (core/health/reasons.ts) rather than only in a status note
 * (issue 12 item 7).
 *
 * HOST_UID_NOT_DROPPED: a `runAs: agent` host could not switch to the
 * unprivileged user because a directory above the state dir is not
 * searchable by it, so it runs as uid 0 with an empty capability set.
 * Landlock and the network namespace still hold, but a file the agent's
 * user may not read is now only protected by Landlock: AMBER, with the fix
 * in the message (status shows it, the human renderer included). Cleared
 * when that host next starts with its uid dropped.
 */
import type { HealthBoard } from "../health/reasons.ts";

export type HostHealth = Pick<HealthBoard, "raise" | "clear">;

export const UID_NOT_DROPPED = "HOST_UID_NOT_DROPPED";

export function reportUidDrop(
  health: HostHealth | undefined,
  o: { group: string; wanted: boolean; unreachable?: string; user: string; stateDir: string },
): void {
  if (!health) return;
  const source = `host:${o.group}`;
  if (!o.wanted || !o.unreachable) {
    health.clear(source, UID_NOT_DROPPED);
    return;
  }
  health.raise(
    source,
    "amber",
    UID_NOT_DROPPED,
    `host ${o.group} runs as root without capabilities instead of as ${o.user}: ${o.unreachable}. ` +
      `Fix: let ${o.user} traverse every directory above ${o.stateDir} (chmod o+x on each), ` +
      `or set stateDir in agent.json to a path under such directories; the host drops its uid at its next start`,
  );
}
