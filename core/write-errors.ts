/**
 * A failed write to the state dir is a reportable store error, not an
 * anonymous exception. ENOSPC (and EDQUOT) become STORE_NO_SPACE, other
 * refusals of the disk (read-only, I/O error) STORE_WRITE_FAILED, each
 * naming the file and the step, so the update cycle can end in a report
 * that says what could not be saved instead of an INTERNAL crash.
 */
import { describeError, isOutpostError, StoreError } from "./errors.ts";

const NO_SPACE = new Set(["ENOSPC", "EDQUOT"]);
const WRITE_FAILED = new Set(["EROFS", "EIO", "EFBIG"]);

/** The store error for a failed write of `file` during `step`, or `e` itself when it is not a disk refusal. */
export function classifyWriteError(e: unknown, file: string, step: string): unknown {
  if (isOutpostError(e)) return e;
  const errno = (e as NodeJS.ErrnoException)?.code;
  if (errno === undefined) return e;
  const details = { step, errno };
  if (NO_SPACE.has(errno)) {
    return new StoreError(
      "STORE_NO_SPACE",
      `${file}: no space left on the state disk while ${step} (${errno})`,
      {
        file,
        cause: e,
        details,
      },
    );
  }
  if (WRITE_FAILED.has(errno)) {
    return new StoreError(
      "STORE_WRITE_FAILED",
      `${file}: the state disk refused ${step} (${errno}: ${describeError(e).message})`,
      { file, cause: e, details },
    );
  }
  return e;
}

/** Runs one write step of `file`, classifying what the disk throws. */
export function writeStep<T>(file: string, step: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw classifyWriteError(e, file, step);
  }
}
