/**
 * Keeping query workers from outliving their parent. A worker spinning in
 * SQLite's C code never returns to the event loop, so it cannot notice its
 * IPC channel closing: if the query host (or `agent query`) is SIGKILLed the
 * worker would run on, orphaned, until its query ends — possibly never. So:
 *
 *  - the worker asks the kernel for SIGKILL when its parent dies
 *    (prctl(PR_SET_PDEATHSIG)), then checks the parent did not die before
 *    that took effect;
 *  - the worker leads its own process group, and the watchdog kills the
 *    group, so anything the worker started (iptables-save for `iptables`)
 *    dies with it.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";

const PR_SET_PDEATHSIG = 1;
const PR_GET_PDEATHSIG = 2;
const SIGKILL = 9;

/** The environment variable carrying the parent's pid to the worker (the race check). */
export const PARENT_PID_ENV = "OUTPOST_QUERY_PARENT_PID";

type Prctl = (option: number, arg2: number | bigint, arg3: number, arg4: number, arg5: number) => number;
let prctl: Prctl | null | undefined;

function loadPrctl(): Prctl | null {
  if (prctl !== undefined) return prctl;
  try {
    const lib = dlopen("libc.so.6", {
      prctl: {
        args: [FFIType.i32, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64],
        returns: FFIType.i32,
      },
    });
    prctl = lib.symbols.prctl as unknown as Prctl;
  } catch {
    prctl = null;
  }
  return prctl;
}

/**
 * Arms PR_SET_PDEATHSIG(SIGKILL) for this process. Returns false when the
 * parent is already gone (the caller must exit) or `expectedParent` is set
 * and is not our parent any more; true otherwise (also when prctl is
 * unavailable, which only loses the guarantee, not the worker).
 */
export function dieWithParent(expectedParent?: number): boolean {
  const p = loadPrctl();
  if (p) p(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  // The parent may have died between our fork and the prctl: then we were already re-parented.
  if (expectedParent && Number.isInteger(expectedParent) && process.ppid !== expectedParent) return false;
  return true;
}

/** The signal armed by PR_SET_PDEATHSIG for this process (0: none), for tests. */
export function parentDeathSignal(): number {
  const p = loadPrctl();
  if (!p) return 0;
  const out = new Int32Array(1);
  return p(PR_GET_PDEATHSIG, BigInt(ptr(out)), 0, 0, 0) === 0 ? out[0]! : 0;
}

/** SIGKILL to a worker's whole process group (it leads one), falling back to the process alone. */
export function killWorkerGroup(proc: { pid: number; kill(signal?: number | NodeJS.Signals): void }): void {
  try {
    process.kill(-proc.pid, "SIGKILL");
  } catch {
    proc.kill("SIGKILL");
  }
}
