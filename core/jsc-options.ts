/**
 * Runtime options for the agent's long-lived processes, the hosts and the
 * supervisor (issue 21, start-up and footprint): JavaScriptCore's tier-up
 * thresholds, no pre-faulted heap blocks, and no allocator scavenger thread.
 *
 * A host evaluates its module graph once: zod builds its schemas, handlers
 * register, the channel opens. JavaScriptCore counts that code as warm (zod's
 * constructors run hundreds of times while schemas are built) and compiles
 * it on JIT worker threads: CPU and executable memory spent on code that
 * never runs again. `agent host --group scanner </dev/null`, median of 15,
 * CPU (user + system), one run: default thresholds 96 ms, no JIT at all 58
 * ms, these thresholds 74 ms (40 and 200 times the baseline default go
 * further, 72 and 69 ms, at a longer warm-up for request paths).
 *
 * Raising the thresholds only delays tier-up. A scan loop, a rule engine's
 * dispatch or the Lua VM runs millions of iterations and reaches the
 * baseline and optimizing tiers within milliseconds: an offline scan of
 * /usr/bin (286 MB, 20k signatures) took the same time or less. What pays
 * is a request path called a few hundred times: bench/ipc.ts's 1 KiB round
 * trip is ~15 µs slower over its first 2,000 calls and no slower over
 * 10,000. WebAssembly tiering is left as it is.
 *
 * JavaScriptCore also keeps a supply of heap blocks that a helper thread
 * ("JSCWarmUp") has already faulted in, so that a heap ramping up does not
 * take those faults on the main thread. A host ramps up once, and the supply
 * it does not use is memory and CPU spent for nothing: without it an idle
 * host holds 0.6–0.9 MiB less anonymous memory (scanner, behavior,
 * appfeed; 3 s and 20 s after start) and starts in 1–7 ms less CPU.
 *
 * Passed as BUN_JSC_* variables (and the allocator's as MIMALLOC_*), the only
 * way to set them in a compiled Bun executable. They take effect at process start, so they
 * apply to the processes the agent launches (hosts, and the query worker
 * that inherits the query host's environment), and to the supervisor, which
 * re-executes itself with them once (jsc-reexec.ts) rather than getting them
 * from its unit file: a unit written by one build must not keep the next
 * from starting. The demo agent's supervisor holds ~46 MiB of anonymous
 * memory with them against ~50 MiB without (45 s after start, three runs).
 * JavaScriptCore's mini VM mode (forceMiniVMMode) would take it to ~41.5
 * MiB, but it collects so often that the supervisor's HTTP serving ran at a
 * quarter of its throughput (bench/control-plane.ts, bare Bun.serve 23–24k
 * → 5.4–5.9k requests/s in the same process).
 *
 * Measured and left out (demo agent with every group running, CPU of the
 * whole tree over 120 s once it had been idle 45 s, one run each; runs of
 * the same build varied by ±10 ticks):
 * - numberOfGCMarkers=1 (one marking thread instead of one per core): 65
 *   ticks against 58 for the same build without it.
 * - The allocator's (mimalloc's) other knobs, MIMALLOC_* variables:
 *   purge_delay 100 ms → 10 s changed nothing; purge_holes=0 (no discarding
 *   of free blocks inside used pages) cost 73 MiB more PSS (the supervisor
 *   59 → 93 MiB) for no less CPU; purge_holes_min_interval 1–10 s took the
 *   scavenger down to 2–9 ticks but the tree up 3–10 MiB.
 *
 * The allocator's scavenger thread is off (MIMALLOC_SCAVENGER=0). It wakes
 * in every process to give freed memory back to the kernel after a delay;
 * without it, the same purge runs on the process's own thread when that
 * thread next allocates or goes idle (the idle collection of idle-gc.ts).
 * Bun runs it so that a process that never goes idle still returns memory
 * (oven-sh/bun#34181). Two demo agents side by side (this build with and
 * without it), every group running:
 * - idle, whole tree: 530 → 490, 940 → 800 and 850 → 710 ms of CPU per 60,
 *   90 and 90 s (−8 to −16 %), PSS the same (144.7/142.0, 156.9/156.7 and
 *   158.7/158.1 MiB);
 * - four minutes of back-to-back online scans of /usr/bin against each
 *   (43 scans each, alternating): median PSS 229.9 → 246.9 and 283.2 →
 *   230.0 MiB in two runs, peak 321 → 330 and 346 → 349 MiB, CPU within 2 %
 *   — the difference in either direction is within the runs' spread;
 * - back to the same PSS within 90 s after the load.
 *
 * Bun calls them unstable, and a runtime that does not know one refuses to
 * start: build.ts starts every agent executable it builds with them
 * (jscOptionsRefused) and fails the build otherwise, and jsc-options.test.ts
 * does the same for the runtime that runs the sources.
 */
export const AGENT_RUNTIME_ENV: Readonly<Record<string, string>> = Object.freeze({
  // Baseline JIT: defaults 500 (after warm-up) and 100 (soon).
  BUN_JSC_thresholdForJITAfterWarmUp: "5000",
  BUN_JSC_thresholdForJITSoon: "5000",
  // DFG: default 1000 for each.
  BUN_JSC_thresholdForOptimizeAfterWarmUp: "20000",
  BUN_JSC_thresholdForOptimizeAfterLongWarmUp: "20000",
  BUN_JSC_thresholdForOptimizeSoon: "20000",
  // The JSCWarmUp thread's supply of pre-faulted MarkedBlocks (WebKit's FastMallocAlignedMemoryAllocator).
  BUN_JSC_useWarmUpMarkedBlocks: "0",
  // No allocator scavenger thread: the purge runs on the process's own thread (see above).
  MIMALLOC_SCAVENGER: "0",
});

/**
 * The JIT policy the agent executable starts with (Bun's `compile.jitPolicy`, set by build.ts):
 * every tier-up threshold ×N from the first instruction, with no environment variable and no
 * re-exec. A one-shot command (`agent scan FILE`, `agent status`) runs its start-up code once,
 * yet with the default policy JavaScriptCore compiled it on JIT threads all the same: ~20 ms of
 * the CPU of an offline one-file scan went to JITWorker threads (perf, 20k signatures). A loop
 * that runs millions of times still reaches every tier, N times later.
 *
 * The processes that stay up switch back to 1 as their first step (`jitPolicyFor`): their
 * thresholds are AGENT_RUNTIME_ENV's, and a policy multiplies whatever thresholds the VM has (with
 * both, a function reached the optimizing tier after ~29,400 calls instead of ~1,160). Worker
 * threads (the sensor reader) start at 1 whatever the executable's policy.
 */
export const ONE_SHOT_JIT_POLICY = 25;

/**
 * Set by a one-shot command for the host processes it starts (the host environment keeps OUTPOST_*
 * variables, core/host/launch.ts): they live no longer than it does. `agent run` clears it, so its
 * hosts never inherit it (core/cli/schema-mode.ts).
 */
export const ONE_SHOT_SUPERVISOR_ENV = "OUTPOST_ONE_SHOT_SUPERVISOR";

/** The JIT policy `agent ARGS` switches to before anything else; undefined: it keeps ONE_SHOT_JIT_POLICY. */
export function jitPolicyFor(
  args: readonly string[],
  env: Record<string, string | undefined> = process.env,
): number | undefined {
  const help = args.includes("--help") || args.includes("-h");
  if (help) return undefined;
  // A host a one-shot command started boots and loads its content once, like the command: it keeps
  // the one-shot policy until its first call (jitPolicyForWork).
  if (args[0] === "host" && env[ONE_SHOT_SUPERVISOR_ENV] === "1") return undefined;
  // The supervisor, a host, the query worker: long-lived, tuned by AGENT_RUNTIME_ENV.
  if (args[0] === "run" || args[0] === "host") return 1;
  if (args.length === 1 && args[0] === "query-worker") return 1;
  return undefined;
}

let workPolicySet = false;

/**
 * The policy a host switches to at its first call, once: 1 in a host a one-shot command started
 * (its boot and content load ran under the one-shot policy), so the work the command asked for — a
 * scan of /usr, say — tiers up as it does in `agent run`'s hosts; undefined otherwise (nothing to
 * change). Booting and loading under the one-shot policy took an offline one-file scan (20k
 * signatures) from 173 to 165 ms of CPU, clamscan 145 in the same run (bench/scan-startup.ts,
 * docs/handler-host.md).
 */
export function jitPolicyForWork(env: Record<string, string | undefined> = process.env): number | undefined {
  if (workPolicySet || env[ONE_SHOT_SUPERVISOR_ENV] !== "1") return undefined;
  workPolicySet = true;
  return 1;
}
