/**
 * Host sandbox problems that are the administrator's to fix, on the health
 * board (core/health/reasons.ts) rather than only in a status note
 * (issue 12 item 7).
 *
 * HOST_UID_NOT_DROPPED: a `runAs: agent` host could not switch to the
 * unprivileged user because a directory above the state dir, or on the way
 * to the agent's executable, is not searchable by it, so it runs as uid 0
 * with an empty capability set.
 * Landlock and the network namespace still hold, but a file the agent's
 * user may not read is now only protected by Landlock: AMBER, with the fix
 * in the message (status shows it, the human renderer included). Cleared
 * when that host next starts with its uid dropped.
 */
import { type Stats, statSync } from "node:fs";
import { dirname } from "node:path";
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
      `Fix: let ${o.user} traverse that directory (chmod o+x on it) — every directory above ${o.stateDir} ` +
      `and above the agent's executable must allow it — or move the state dir (stateDir in agent.json) or the ` +
      `executable under such directories; the host drops its uid at its next start`,
  );
}

/** Whether `who` may search (x) directory `st` by its mode bits (the uid drop also clears groups). */
function searchable(st: Pick<Stats, "mode" | "uid" | "gid">, who: { uid: number; gid: number }): boolean {
  if (st.uid === who.uid) return (st.mode & 0o100) !== 0;
  if (st.gid === who.gid) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

/**
 * Why the unprivileged user could not start the host program: the first
 * directory on the way to the executable (and, from source, to the checkout
 * it runs) it may not search. undefined when nothing is in the way. Such a
 * host keeps uid 0 without capabilities, like one whose work dir is
 * unreachable, instead of failing to exec (exit 126) in a crash loop.
 */
export function programBlocker(
  who: { uid: number; gid: number; user: string },
  executable: string,
  installDir: string,
  stat: (p: string) => Pick<Stats, "mode" | "uid" | "gid"> = statSync,
): string | undefined {
  const dirs = new Set<string>();
  for (const start of [dirname(executable), installDir]) {
    for (let d = start; ; d = dirname(d)) {
      dirs.add(d);
      if (d === dirname(d)) break;
    }
  }
  for (const d of [...dirs].sort((a, b) => a.length - b.length)) {
    let st: Pick<Stats, "mode" | "uid" | "gid">;
    try {
      st = stat(d);
    } catch {
      continue;
    }
    if (!searchable(st, who))
      return `${d} is not searchable by ${who.user} (uid ${who.uid}), so it cannot start the host program`;
  }
  return undefined;
}
