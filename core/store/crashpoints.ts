/**
 * Crash-point injection for testing durability. The store calls
 * `crashPoint(label)` between every pair of durable mutations (write, fsync,
 * rename, unlink, mkdir). With `OUTPOST_CRASH_POINT=<n>` the process SIGKILLs
 * itself at the n-th call, so a test can stop the agent after any prefix of
 * completed syscalls and check that recovery yields exactly the old or the new
 * state. `OUTPOST_CRASH_TRACE=1` prints each point (`crashpoint <n> <label>`)
 * on stderr so a test can first learn how many points an operation has.
 *
 * When neither variable is set the hook is `undefined` and `crashPoint` is a
 * single comparison: production pays nothing.
 */
import { writeSync } from "node:fs";

export type CrashHook = (step: number, label: string) => void;

let hook: CrashHook | undefined = hookFromEnv(process.env);
let step = 0;

export function crashPoint(label: string): void {
  if (hook === undefined) return;
  step += 1;
  hook(step, label);
}

/**
 * Replaces the hook (in-process tests inject one that throws or records);
 * `undefined` disables it. Resets the step counter.
 */
export function setCrashHook(next: CrashHook | undefined): void {
  hook = next;
  step = 0;
}

/** Points passed since the hook was installed (0 when disabled). */
export function crashPointsPassed(): number {
  return step;
}

function hookFromEnv(env: NodeJS.ProcessEnv): CrashHook | undefined {
  const raw = env.OUTPOST_CRASH_POINT;
  const target = raw === undefined || raw === "" ? undefined : Number(raw);
  const trace = env.OUTPOST_CRASH_TRACE === "1";
  if (target !== undefined && (!Number.isInteger(target) || target < 1)) {
    throw new Error(`OUTPOST_CRASH_POINT must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  if (target === undefined && !trace) return undefined;
  return (n, label) => {
    // writeSync, not the logger: the line must be out before the SIGKILL.
    if (trace || n === target) writeSync(2, `crashpoint ${n} ${label}\n`);
    if (n === target) process.kill(process.pid, "SIGKILL");
  };
}
