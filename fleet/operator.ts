/**
 * What an operator may do to a release by hand, as pure checks, and who did
 * it (the audit trail, fleet/identity/store.ts). Rules:
 *
 *   O1  `promote` into the next group needs the current group soaked and
 *       judged healthy — the same gate the scheduler applies (S3)
 *   O2  `--force` overrides O1 only with a reason; the reason is audited
 *   O3  `close` finishes an active release that cannot move (a stalled
 *       sample, an abandoned version) without taking anything back; an
 *       aborted release is finished by its reverts, never closed
 *   O4  every promote, force, abort and close — by an operator or by the
 *       scheduler — is appended to the audit trail with who, when and why
 */
import { userInfo } from "node:os";
import { UpdateError } from "../core/errors.ts";
import type { ReleaseConfig } from "./config.ts";
import type { Judgement } from "./health.ts";
import { type HealthSnapshot, judgeGroup, soakEndsAt } from "./plan.ts";
import type { Release } from "./state.ts";

export interface ManualPromotion {
  force?: boolean;
  reason?: string;
}

/** O1/O2: throws the refusal, or returns the judgement of the current group (for the log and audit). */
export function checkManualPromotion(
  r: Release,
  index: number,
  config: Pick<ReleaseConfig, "groups" | "health">,
  health: HealthSnapshot,
  now: Date,
  opts: ManualPromotion,
): Judgement | null {
  const current = r.groups[index];
  const next = r.groups[index + 1];
  if (opts.force && !opts.reason?.trim()) {
    throw new UpdateError("REL_FORCE_REASON", `O2: --force needs --reason TEXT (it is audited)`);
  }
  if (!current || !next) return null;
  const j = judgeGroup(r, current.name, config, health);
  if (opts.force) return j;
  if (j.verdict === "unhealthy") {
    throw new UpdateError(
      "REL_UNHEALTHY",
      `O1: not promoting ${r.id} to ${next.name}: ${j.reason} (--force --reason overrides)`,
    );
  }
  const ends = soakEndsAt(r, index, config);
  if (ends !== null && now.getTime() < ends) {
    throw new UpdateError(
      "REL_SOAKING",
      `O1: not promoting ${r.id} to ${next.name}: ${current.name} soaks until ${new Date(ends).toISOString()} (--force --reason overrides)`,
    );
  }
  if (j.verdict !== "healthy") {
    throw new UpdateError(
      "REL_NOT_HEALTHY",
      `O1: not promoting ${r.id} to ${next.name}: ${current.name} is ${j.verdict}: ${j.reason} (--force --reason overrides)`,
    );
  }
  return j;
}

/** O3 */
export function checkClose(r: Release, reason: string): void {
  if (!reason.trim())
    throw new UpdateError("REL_CLOSE_REASON", "O3: close needs --reason TEXT (it is audited)");
  if (r.status !== "active") {
    throw new UpdateError(
      "REL_NOT_ACTIVE",
      `O3: release ${r.id} is ${r.status}; only an active release can be closed`,
    );
  }
}

/** Who runs this CLI, for the audit trail when no --operator is given. */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return `cli:uid-${process.getuid?.() ?? "?"}`;
  }
}
