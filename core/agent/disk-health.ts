/**
 * A state disk that refuses writes (full, read-only, failing) keeps health
 * AMBER through the health board, naming the file and the step, until a
 * cycle saves everything again. The agent keeps running on what is live and
 * keeps the unsaved errors in memory for `agent status`.
 */
import type { HealthBoard } from "../health/reasons.ts";

const DISK_CODES = new Set(["STORE_NO_SPACE", "STORE_WRITE_FAILED"]);

export function isDiskFailure(code: string): boolean {
  return DISK_CODES.has(code);
}

/** Raises (or updates) the store's AMBER reason for a refused write. */
export function noteDiskFailure(health: HealthBoard, code: string, file: string, reason: string): void {
  if (!isDiskFailure(code)) return;
  const message = reason.startsWith(file) ? reason : `${file}: ${reason}`;
  health.raise("store", "amber", code, `${message}; the agent keeps serving the content that is live`);
}

/** A cycle that saved everything: the disk takes writes again. */
export function clearDiskFailures(health: HealthBoard): void {
  for (const code of DISK_CODES) health.clear("store", code);
}
